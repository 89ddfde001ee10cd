/* The steps of a probe's hit that cost the most in Python, in C.
 *
 * Optional, as coverage.py's CTracer is: the agent works the same without it (see
 * peephole/agent/speedups.py, which picks this module or the pure-Python equivalents), and
 * setup.py builds it only where a C compiler is found.
 *
 * same_traceback (every version): whether a traceback passes through the code objects and
 *     instructions an earlier one did, as exception_capture/fingerprints.py's Python.
 * mapping_entries, named_values, item_nodes, stack_of, frame_records (every version): the
 *     inner loops of a capture, step for step those of safe/capture_loops.py (read it for
 *     what each does). They make the common nodes themselves (a str key or name seen
 *     before, a short str, a small int, a bool, a frame of a known code object) and call the
 *     capture's Python code for every other value.
 * InjectedCall (3.9-3.11): what the code a probe's statement was given calls (Site.call of
 *     placement/instrument/__init__.py): the hooks of the statement's probes, with the caller's
 *     frame. As a C callable it has no Python frame of its own, so the running frame is the
 *     probed one, without sys._getframe(1).
 * InstructionCallback (3.12+): the INSTRUCTION event callback of
 *     placement/instrument/monitoring.py, step for step: look the code object and offset up
 *     in the backend's table (DISABLE where there is no probe), then call the hooks of the
 *     statement that starts there. As a C callable it has no Python frame of its own: the
 *     running frame is the probed one.
 * frame_vars(frame) (3.9, 3.10, 3.12): a mapping of a function frame's variables that reads
 *     each one when asked (PyFrame_GetVar on 3.12, the frame's slots on 3.9 and 3.10), for
 *     evaluating a probe's condition; for any other frame (a module or class body, exec) its
 *     f_locals, the mapping its variables live in. Before 3.13 frame.f_locals copies every
 *     local into a dict on each hit, a third of a false condition's cost; 3.13's f_locals is
 *     already such a view (PEP 667), and 3.11 has no public way to read one variable.
 *
 * None runs code of the application: dict lookups use int and str keys only, the values
 * compared are exact ints and strs, and the functions called are the agent's own.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stddef.h>


static PyObject *hooks_name; /* "hooks", interned: a Site's hooks */

/* As Python's ``except Exception as exc: internal_error(where, exc)``, for the hooks' callers
   (InjectedCall, InstructionCallback): 0 once reported, -1 with the error still set when it is a
   BaseException (KeyboardInterrupt, SystemExit), which goes on into the application. */
static int
report_failure(PyObject *on_error, PyObject *where)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *value = PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
#endif
    PyObject *result =
        PyObject_CallFunctionObjArgs(on_error, where, value != NULL ? value : Py_None, NULL);
    Py_XDECREF(value);
    if (result == NULL) {
        /* internal_error does not fail; an interrupt while it runs goes on, as in Python */
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return -1;
        }
        PyErr_Clear();
    }
    Py_XDECREF(result);
    return 0;
}

/* --- the capture's inner loops (safe/capture_loops.py) ---------------------------------- */

static PyObject *t_text, *v_text, *int_text, *bool_text; /* "t", "v", "int", "bool" */
static PyObject *line_text;                               /* "line" */

#define INT_NODE_SIZE 36  /* the JSON bytes of {"t": "int", "v": ...}, as capture_loops */
#define BOOL_NODE_SIZE 24
#define CARD_SIZED 1000000000000LL /* 10**12: shorter ints cannot be card numbers */

/* 1 if ``value`` (an exact int) is shown without a card-number check: -10**12 < v < 10**12. */
static int
is_short_int(PyObject *value)
{
    int overflow;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    return !overflow && -CARD_SIZED < number && number < CARD_SIZED;
}

/* A new {"t": kind, "v": value} node. */
static PyObject *
scalar_node(PyObject *kind, PyObject *value)
{
    PyObject *node = PyDict_New();
    if (node == NULL) {
        return NULL;
    }
    if (PyDict_SetItem(node, t_text, kind) < 0 || PyDict_SetItem(node, v_text, value) < 0) {
        Py_DECREF(node);
        return NULL;
    }
    return node;
}

/* The (node, size) a scalars cache holds for ``value``: 1 found (node borrowed), 0 not
   found, -1 an error. */
static int
known_scalar(PyObject *scalars, PyObject *value, PyObject **node, Py_ssize_t *size)
{
    PyObject *known = PyDict_GetItemWithError(scalars, value);
    if (known == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 2) {
        PyErr_SetString(PyExc_TypeError, "a scalars cache entry is not (node, size)");
        return -1;
    }
    *size = PyLong_AsSsize_t(PyTuple_GET_ITEM(known, 1));
    if (*size == -1 && PyErr_Occurred()) {
        return -1;
    }
    *node = PyTuple_GET_ITEM(known, 0);
    return 1;
}

/* The (a, b) pair at ``index`` of a list of pairs, borrowed (the list is the capture's own
   copy), or NULL with an error. */
static PyObject *
pair_at(PyObject *pairs, Py_ssize_t index)
{
    PyObject *pair = PyList_GET_ITEM(pairs, index);
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "expected (name, value) pairs");
        return NULL;
    }
    return pair;
}

/* A call's result that must be (object, int): the object (new reference) and the int. */
static PyObject *
object_and_size(PyObject *result, Py_ssize_t *size)
{
    if (result == NULL) {
        return NULL;
    }
    if (!PyTuple_CheckExact(result) || PyTuple_GET_SIZE(result) != 2) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_TypeError, "expected (node, size)");
        return NULL;
    }
    *size = PyLong_AsSsize_t(PyTuple_GET_ITEM(result, 1));
    if (*size == -1 && PyErr_Occurred()) {
        Py_DECREF(result);
        return NULL;
    }
    PyObject *object = PyTuple_GET_ITEM(result, 0);
    Py_INCREF(object);
    Py_DECREF(result);
    return object;
}

/* The entry a known str key makes for ``item`` without calling back (a new reference, with
   its size), or NULL with no error when it needs the capture's Python code, or NULL with an
   error. ``known`` is the key's (node, size, secret?, last value, last entry, entry size);
   ``keep``: the entry made replaces the key's in ``keys``. */
static PyObject *
known_key_entry(PyObject *keys, PyObject *key, PyObject *known, PyObject *item,
                PyObject *scalars, int show, int keep, Py_ssize_t *added)
{
    if (!PyTuple_CheckExact(known) || PyTuple_GET_SIZE(known) != 6) {
        PyErr_SetString(PyExc_TypeError, "a keys cache entry is not a 6-tuple");
        return NULL;
    }
    PyObject *key_node = PyTuple_GET_ITEM(known, 0);
    PyObject *last = PyTuple_GET_ITEM(known, 3);
    PyTypeObject *cls = Py_TYPE(item);
    if (show) {
        int same = last == item;
        if (!same && (cls == &PyUnicode_Type || cls == &PyLong_Type) && Py_TYPE(last) == cls) {
            same = PyObject_RichCompareBool(last, item, Py_EQ); /* exact ints or strs */
            if (same < 0) {
                return NULL;
            }
        }
        if (same) {
            *added = PyLong_AsSsize_t(PyTuple_GET_ITEM(known, 5));
            if (*added == -1 && PyErr_Occurred()) {
                return NULL;
            }
            PyObject *entry = PyTuple_GET_ITEM(known, 4);
            Py_INCREF(entry);
            return entry;
        }
    }
    int secret = PyObject_IsTrue(PyTuple_GET_ITEM(known, 2));
    if (secret != 0) {
        return NULL; /* a secret name (or an error): the capture decides */
    }
    PyObject *value_node = NULL;
    Py_ssize_t value_size;
    if (cls == &PyUnicode_Type) {
        int found = known_scalar(scalars, item, &value_node, &value_size);
        if (found <= 0) {
            return NULL;
        }
        Py_INCREF(value_node);
    }
    else if (cls == &PyLong_Type && is_short_int(item)) {
        value_node = scalar_node(int_text, item);
        if (value_node == NULL) {
            return NULL;
        }
        value_size = INT_NODE_SIZE;
    }
    else {
        return NULL;
    }
    Py_ssize_t key_size = PyLong_AsSsize_t(PyTuple_GET_ITEM(known, 1));
    if (key_size == -1 && PyErr_Occurred()) {
        Py_DECREF(value_node);
        return NULL;
    }
    PyObject *entry = PyList_New(2);
    if (entry == NULL) {
        Py_DECREF(value_node);
        return NULL;
    }
    Py_INCREF(key_node);
    PyList_SET_ITEM(entry, 0, key_node);
    PyList_SET_ITEM(entry, 1, value_node);
    *added = key_size + value_size;
    if (keep) {
        PyObject *info = Py_BuildValue("(OnOOOn)", key_node, key_size, Py_False, item, entry,
                                       *added);
        if (info == NULL || PyDict_SetItem(keys, key, info) < 0) {
            Py_XDECREF(info);
            Py_DECREF(entry);
            return NULL;
        }
        Py_DECREF(info);
    }
    return entry;
}

/* The KeyInfo of a str key (a new reference): ``keys``'s, else ``key_info(key)``'s, with
   whether an entry made under it may be kept in ``keys`` (``key_info`` keeps a key unless
   it is too long to). NULL with an error on failure. */
static PyObject *
key_info_of(PyObject *keys, PyObject *key_info, PyObject *key, int show, int *keep)
{
    PyObject *info = PyDict_GetItemWithError(keys, key);
    if (info != NULL) {
        Py_INCREF(info); /* another thread may replace it meanwhile */
        *keep = show;
        return info;
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    info = PyObject_CallOneArg(key_info, key);
    int kept = info == NULL ? 0 : PyDict_Contains(keys, key);
    if (kept < 0) {
        Py_CLEAR(info);
    }
    *keep = show && kept;
    return info;
}

/* mapping_entries(pairs, keys, key_info, scalars, show, entry_of, depth, location) */
static PyObject *
mapping_entries(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyList_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) ||
        !PyDict_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "mapping_entries(pairs: list, keys: dict, key_info, scalars: dict, "
                        "show, entry_of, depth, location)");
        return NULL;
    }
    PyObject *pairs = args[0], *keys = args[1], *key_info = args[2], *scalars = args[3];
    PyObject *entry_of = args[5], *depth = args[6], *location = args[7];
    int show = PyObject_IsTrue(args[4]);
    if (show < 0) {
        return NULL;
    }
    PyObject *entries = PyList_New(0);
    if (entries == NULL) {
        return NULL;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = pair_at(pairs, i);
        if (pair == NULL) {
            goto error;
        }
        Py_INCREF(pair);
        PyObject *key = PyTuple_GET_ITEM(pair, 0), *item = PyTuple_GET_ITEM(pair, 1);
        PyObject *entry = NULL, *info = NULL;
        Py_ssize_t added = 0;
        if (PyUnicode_CheckExact(key)) {
            int keep;
            info = key_info_of(keys, key_info, key, show, &keep);
            if (info != NULL) {
                entry = known_key_entry(keys, key, info, item, scalars, show, keep, &added);
            }
            if (entry == NULL && PyErr_Occurred()) {
                Py_XDECREF(info);
                Py_DECREF(pair);
                goto error;
            }
        }
        if (entry == NULL) {
            PyObject *where = Py_BuildValue("(On)", location, PyList_GET_SIZE(entries));
            if (where != NULL) {
                PyObject *call[5] = {key, info != NULL ? info : Py_None, item, depth, where};
                entry = object_and_size(PyObject_Vectorcall(entry_of, call, 5, NULL), &added);
                Py_DECREF(where);
            }
        }
        Py_XDECREF(info);
        Py_DECREF(pair);
        if (entry == NULL) {
            goto error;
        }
        int failed = PyList_Append(entries, entry);
        Py_DECREF(entry);
        if (failed) {
            goto error;
        }
        size += added;
    }
    return Py_BuildValue("(Nn)", entries, size);
error:
    Py_DECREF(entries);
    return NULL;
}

/* named_values(pairs, out, limit, names, name_info, scalars, walk, depth, location, secret) */
static PyObject *
named_values(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10 || !PyList_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) ||
        !PyDict_CheckExact(args[3]) || !PyDict_CheckExact(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "named_values(pairs: list, out: dict, limit, names: dict, name_info, "
                        "scalars: dict, walk, depth, location, secret)");
        return NULL;
    }
    PyObject *pairs = args[0], *out = args[1], *names = args[3], *name_info = args[4];
    PyObject *scalars = args[5], *walk = args[6], *depth = args[7], *location = args[8];
    PyObject *secret = args[9];
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t shown = 0, skipped = 0, size = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = pair_at(pairs, i);
        if (pair == NULL) {
            return NULL;
        }
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *item = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_CheckExact(name)) {
            skipped++;
            continue;
        }
        Py_INCREF(pair);
        PyObject *known_obj = PyDict_GetItemWithError(names, name);
        if (known_obj != NULL) {
            Py_INCREF(known_obj);
        }
        else if (!PyErr_Occurred()) {
            known_obj = PyObject_CallOneArg(name_info, name);
        }
        if (known_obj == NULL) {
            Py_DECREF(pair);
            return NULL;
        }
        Py_ssize_t known = PyLong_AsSsize_t(known_obj);
        Py_DECREF(known_obj);
        if (known == -1 && PyErr_Occurred()) {
            Py_DECREF(pair);
            return NULL;
        }
        if (known < 0) { /* a dunder */
            Py_DECREF(pair);
            skipped++;
            continue;
        }
        if (shown >= limit) {
            Py_DECREF(pair);
            break;
        }
        shown++;
        PyObject *node = NULL;
        Py_ssize_t added = 0;
        PyTypeObject *cls = Py_TYPE(item);
        if (known == 0) { /* a secret name */
            PyObject *call[4] = {name, item, depth, location};
            node = object_and_size(PyObject_Vectorcall(secret, call, 4, NULL), &added);
        }
        else {
            added = known;
            Py_ssize_t value_size = 0;
            int failed = 0;
            if (cls == &PyUnicode_Type) {
                failed = known_scalar(scalars, item, &node, &value_size) < 0;
                Py_XINCREF(node);
            }
            else if (cls == &PyLong_Type && is_short_int(item)) {
                node = scalar_node(int_text, item);
                failed = node == NULL;
                value_size = INT_NODE_SIZE;
            }
            else if (cls == &PyBool_Type) {
                node = scalar_node(bool_text, item);
                failed = node == NULL;
                value_size = BOOL_NODE_SIZE;
            }
            if (failed) {
                Py_DECREF(pair);
                return NULL;
            }
            if (node != NULL) {
                added += value_size;
            }
            else {
                PyObject *call[4] = {item, depth, location, name};
                node = PyObject_Vectorcall(walk, call, 4, NULL);
            }
        }
        if (node == NULL) {
            Py_DECREF(pair);
            return NULL;
        }
        int failed = PyDict_SetItem(out, name, node);
        Py_DECREF(node);
        Py_DECREF(pair);
        if (failed) {
            return NULL;
        }
        size += added;
    }
    return Py_BuildValue("(nnn)", shown, skipped, size);
}

/* item_nodes(shown, scalars, walk, depth, location) */
static PyObject *
item_nodes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !(PyList_CheckExact(args[0]) || PyTuple_CheckExact(args[0])) ||
        !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "item_nodes(shown: list or tuple, scalars: dict, "
                                         "walk, depth, location)");
        return NULL;
    }
    PyObject *shown = args[0], *scalars = args[1], *walk = args[2], *depth = args[3];
    PyObject *location = args[4];
    PyObject *items = PyList_New(0);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(shown); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(shown, i);
        Py_INCREF(item);
        PyTypeObject *cls = Py_TYPE(item);
        PyObject *node = NULL;
        Py_ssize_t value_size = 0;
        if (cls == &PyUnicode_Type) {
            int found = known_scalar(scalars, item, &node, &value_size);
            if (found < 0) {
                Py_DECREF(item);
                goto error;
            }
            Py_XINCREF(node);
        }
        else if (cls == &PyLong_Type && is_short_int(item)) {
            node = scalar_node(int_text, item);
            if (node == NULL) {
                Py_DECREF(item);
                goto error;
            }
            value_size = INT_NODE_SIZE;
        }
        if (node == NULL) {
            PyObject *index = PyLong_FromSsize_t(PyList_GET_SIZE(items));
            if (index == NULL) {
                Py_DECREF(item);
                goto error;
            }
            PyObject *call[4] = {item, depth, location, index};
            node = PyObject_Vectorcall(walk, call, 4, NULL);
            Py_DECREF(index);
            value_size = 0; /* the walk counts its own bytes */
        }
        Py_DECREF(item);
        if (node == NULL) {
            goto error;
        }
        int failed = PyList_Append(items, node);
        Py_DECREF(node);
        if (failed) {
            goto error;
        }
        size += value_size;
    }
    return Py_BuildValue("(Nn)", items, size);
error:
    Py_DECREF(items);
    return NULL;
}


/* stack_of(frame, max_frames): [(frame, line), ...], innermost first. */
static PyObject *
stack_of(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || (args[0] != Py_None && !PyFrame_Check(args[0]))) {
        PyErr_SetString(PyExc_TypeError, "stack_of(frame or None, max_frames)");
        return NULL;
    }
    Py_ssize_t max_frames = PyLong_AsSsize_t(args[1]);
    if (max_frames == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *stack = PyList_New(0);
    if (stack == NULL) {
        return NULL;
    }
    PyFrameObject *frame = args[0] == Py_None ? NULL : (PyFrameObject *)args[0];
    Py_XINCREF(frame);
    for (Py_ssize_t i = 0; i < max_frames && frame != NULL; i++) {
        int line = PyFrame_GetLineNumber(frame); /* frame.f_lineno, None (-1) read as 0 */
        PyObject *entry = Py_BuildValue("(Oi)", frame, line < 0 ? 0 : line);
        if (entry == NULL || PyList_Append(stack, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(frame);
            Py_DECREF(stack);
            return NULL;
        }
        Py_DECREF(entry);
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        if (back == NULL && PyErr_Occurred()) { /* 3.11+: no memory for the caller's frame */
            Py_DECREF(stack);
            return NULL;
        }
        frame = back;
    }
    Py_XDECREF(frame);
    return stack;
}

/* A new reference to frame.f_globals. */
static PyObject *
frame_globals(PyFrameObject *frame)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyFrame_GetGlobals(frame);
#else
    Py_INCREF(frame->f_globals);
    return frame->f_globals;
#endif
}

/* The (code, record, size, globals) the capture keeps for a frame's code object (a new
   reference): ``codes``'s, or ``code_info``'s when it has none for this code and globals. */
static PyObject *
code_record(PyObject *codes, PyObject *code_info, PyFrameObject *frame)
{
    PyObject *code = (PyObject *)PyFrame_GetCode(frame);
    PyObject *globals = frame_globals(frame);
    PyObject *key = PyLong_FromVoidPtr(code);
    PyObject *info = NULL;
    if (key != NULL) {
        info = PyDict_GetItemWithError(codes, key);
        Py_DECREF(key);
        if (info != NULL && PyTuple_CheckExact(info) && PyTuple_GET_SIZE(info) == 4 &&
            PyTuple_GET_ITEM(info, 0) == code && PyTuple_GET_ITEM(info, 3) == globals &&
            PyDict_CheckExact(PyTuple_GET_ITEM(info, 1))) {
            Py_INCREF(info);
        }
        else if (PyErr_Occurred()) {
            info = NULL;
        }
        else {
            info = PyObject_CallFunctionObjArgs(code_info, code, globals, NULL);
            if (info != NULL && (!PyTuple_CheckExact(info) || PyTuple_GET_SIZE(info) != 4 ||
                                 !PyDict_CheckExact(PyTuple_GET_ITEM(info, 1)))) {
                Py_DECREF(info);
                PyErr_SetString(PyExc_TypeError, "code_info did not give a code's record");
                info = NULL;
            }
        }
    }
    Py_DECREF(code);
    Py_DECREF(globals);
    return info;
}

/* frame_records(frames, codes, code_info): each frame's record, and the bytes they take. */
static PyObject *
frame_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "frame_records(frames: list, codes: dict, code_info)");
        return NULL;
    }
    PyObject *frames = args[0], *codes = args[1], *code_info = args[2];
    PyObject *nodes = PyList_New(0);
    if (nodes == NULL) {
        return NULL;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(frames); i++) {
        PyObject *pair = pair_at(frames, i);
        if (pair == NULL) {
            goto error;
        }
        if (!PyFrame_Check(PyTuple_GET_ITEM(pair, 0))) {
            PyErr_SetString(PyExc_TypeError, "expected (frame, line) pairs");
            goto error;
        }
        Py_INCREF(pair);
        PyObject *info = code_record(codes, code_info, (PyFrameObject *)PyTuple_GET_ITEM(pair, 0));
        PyObject *node = NULL;
        Py_ssize_t record_size = -1;
        if (info != NULL) {
            record_size = PyLong_AsSsize_t(PyTuple_GET_ITEM(info, 2));
            if (!(record_size == -1 && PyErr_Occurred())) {
                node = PyDict_Copy(PyTuple_GET_ITEM(info, 1));
            }
            Py_DECREF(info);
        }
        int failed = node == NULL || PyDict_SetItem(node, line_text, PyTuple_GET_ITEM(pair, 1)) < 0 ||
                     PyList_Append(nodes, node) < 0;
        Py_XDECREF(node);
        Py_DECREF(pair);
        if (failed) {
            goto error;
        }
        size += record_size;
    }
    return Py_BuildValue("(Nn)", nodes, size);
error:
    Py_DECREF(nodes);
    return NULL;
}


/* --- same_traceback (exception_capture/fingerprints.py) ------------------------------- */

/* same_traceback(tb, entries): whether the traceback ``tb`` has exactly one entry per item of
   ``entries`` (a tuple of (code, instruction) pairs), each in that code at that instruction. */
static PyObject *
same_traceback(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_CheckExact(args[1]) ||
        (args[0] != Py_None && !PyTraceBack_Check(args[0]))) {
        PyErr_SetString(PyExc_TypeError, "same_traceback(traceback or None, entries: tuple)");
        return NULL;
    }
    PyTracebackObject *tb = args[0] == Py_None ? NULL : (PyTracebackObject *)args[0];
    PyObject *entries = args[1];
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(entries); i++) {
        if (tb == NULL) {
            Py_RETURN_FALSE; /* this traceback is shorter */
        }
        PyObject *entry = PyTuple_GET_ITEM(entries, i);
        if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 2) {
            PyErr_SetString(PyExc_TypeError, "expected (code, instruction) pairs");
            return NULL;
        }
        PyCodeObject *code = PyFrame_GetCode(tb->tb_frame);
        Py_DECREF(code); /* only its identity is compared; the frame holds it */
        if ((PyObject *)code != PyTuple_GET_ITEM(entry, 0)) {
            Py_RETURN_FALSE;
        }
        PyObject *instruction = PyTuple_GET_ITEM(entry, 1);
        if (!PyLong_CheckExact(instruction)) { /* converting another type would run its code */
            Py_RETURN_FALSE;
        }
        int overflow;
        long lasti = PyLong_AsLongAndOverflow(instruction, &overflow);
        if (overflow || lasti != tb->tb_lasti) {
            Py_RETURN_FALSE;
        }
        tb = tb->tb_next;
    }
    return PyBool_FromLong(tb == NULL);
}


#if PY_VERSION_HEX < 0x030B0000 || (PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000)

/* --- frame_vars ------------------------------------------------------------------------ */


typedef struct {
    PyObject_HEAD
    PyFrameObject *frame;
} FrameVars;

#if PY_VERSION_HEX < 0x030B0000
/* The index of ``name`` among the first ``count`` of ``names`` (a code object's), or -1: by
   identity first (names in code are interned, and so are those a condition spells), then
   by value. */
static Py_ssize_t
name_index(PyObject *names, Py_ssize_t count, PyObject *name)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        if (PyTuple_GET_ITEM(names, i) == name) {
            return i;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *other = PyTuple_GET_ITEM(names, i);
        if (PyUnicode_CheckExact(other) && PyUnicode_Compare(other, name) == 0) {
            return i;
        }
    }
    return -1;
}

/* The content of the cell in a frame's slot, new reference, or NULL (no error) when empty. */
static PyObject *
cell_content(PyObject *cell)
{
    PyObject *value = cell != NULL && PyCell_Check(cell) ? PyCell_GET(cell) : NULL;
    Py_XINCREF(value);
    return value;
}

/* 3.9, 3.10: what frame.f_locals would hold under ``name`` (a new reference), or NULL (with
   an error only when one occurred) when it would hold nothing, read from the frame's slots as
   PyFrame_FastToLocals copies them: the free variables, then the cells, then the plain
   locals, the first of these that names it deciding (a cell that is also an argument holds
   the argument's value); a name the code does not define, from the frame's own dict. */
static PyObject *
frame_var(PyFrameObject *frame, PyObject *name)
{
    PyCodeObject *code = frame->f_code;
    PyObject **slots = frame->f_localsplus;
    Py_ssize_t locals = code->co_nlocals;
    Py_ssize_t cells = PyTuple_GET_SIZE(code->co_cellvars);
    Py_ssize_t index = name_index(code->co_freevars, PyTuple_GET_SIZE(code->co_freevars), name);
    if (index >= 0) {
        return cell_content(slots[locals + cells + index]);
    }
    index = name_index(code->co_cellvars, cells, name);
    if (index >= 0) {
        return cell_content(slots[locals + index]);
    }
    Py_ssize_t plain = PyTuple_GET_SIZE(code->co_varnames);
    index = name_index(code->co_varnames, plain < locals ? plain : locals, name);
    if (index >= 0) {
        Py_XINCREF(slots[index]);
        return slots[index];
    }
    /* Not a variable of the code: f_locals still holds what was written into it (a debugger's
       frame.f_locals["x"] = 1), in the frame's own dict, which FastToLocals only updates. */
    PyObject *written = frame->f_locals;
    if (written == NULL || !PyDict_CheckExact(written)) {
        return NULL;
    }
    PyObject *value = PyDict_GetItemWithError(written, name); /* an exact str key */
    Py_XINCREF(value);
    return value;
}
#endif

/* A new reference to the variable's value, or NULL with no error set when the frame has no
   bound variable of that name (PyFrame_GetVar's NameError is cleared), or NULL with an
   error. Only exact str keys are looked up: nothing else can name a variable. */
static PyObject *
frame_vars_lookup(FrameVars *self, PyObject *name)
{
    if (!PyUnicode_CheckExact(name)) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *value = PyFrame_GetVar(self->frame, name);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_NameError)) {
        PyErr_Clear();
    }
    return value;
#else
    return frame_var(self->frame, name);
#endif
}

static PyObject *
frame_vars_getitem(FrameVars *self, PyObject *name)
{
    PyObject *value = frame_vars_lookup(self, name);
    if (value == NULL && !PyErr_Occurred()) {
        PyErr_SetObject(PyExc_KeyError, name);
    }
    return value;
}

static int
frame_vars_contains(FrameVars *self, PyObject *name)
{
    PyObject *value = frame_vars_lookup(self, name);
    if (value == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_DECREF(value);
    return 1;
}

static int
frame_vars_traverse(FrameVars *self, visitproc visit, void *arg)
{
    Py_VISIT(self->frame);
    return 0;
}

static int
frame_vars_clear(FrameVars *self)
{
    Py_CLEAR(self->frame);
    return 0;
}

static void
frame_vars_dealloc(FrameVars *self)
{
    PyObject_GC_UnTrack(self);
    frame_vars_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMappingMethods frame_vars_mapping = {
    .mp_subscript = (binaryfunc)frame_vars_getitem,
};

static PySequenceMethods frame_vars_sequence = {
    .sq_contains = (objobjproc)frame_vars_contains,
};

static PyTypeObject FrameVarsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "peephole.agent._speedups.FrameVars",
    .tp_doc = "The variables of one frame, read one at a time (``in`` and ``[]`` only).",
    .tp_basicsize = sizeof(FrameVars),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_as_mapping = &frame_vars_mapping,
    .tp_as_sequence = &frame_vars_sequence,
    .tp_traverse = (traverseproc)frame_vars_traverse,
    .tp_clear = (inquiry)frame_vars_clear,
    .tp_dealloc = (destructor)frame_vars_dealloc,
};

static PyObject *
frame_vars(PyObject *module, PyObject *frame)
{
    if (!PyFrame_Check(frame)) {
        PyErr_SetString(PyExc_TypeError, "frame_vars() takes a frame");
        return NULL;
    }
    PyCodeObject *code = PyFrame_GetCode((PyFrameObject *)frame);
    int optimized = code->co_flags & CO_OPTIMIZED;
    Py_DECREF(code);
    if (!optimized) { /* a module or class body, exec(): its variables are in a mapping */
#if PY_VERSION_HEX >= 0x030C0000
        return PyFrame_GetLocals((PyFrameObject *)frame);
#else
        return PyObject_GetAttrString(frame, "f_locals");
#endif
    }
    FrameVars *self = PyObject_GC_New(FrameVars, &FrameVarsType);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(frame);
    self->frame = (PyFrameObject *)frame;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

#endif /* 3.9, 3.10, 3.12 */

/* --- InjectedCall (3.9-3.11, placement/instrument/inject.py) -------------------------- */

#if PY_VERSION_HEX < 0x030C0000

static PyObject *where_hook; /* "a probe hook" */

typedef struct {
    PyObject_HEAD
    PyObject *site;     /* the Site: its hooks are read on each call, as they change */
    PyObject *on_error; /* internal_error(where, exc) */
    vectorcallfunc vectorcall;
} InjectedCall;

static PyObject *
injected_call_vectorcall(InjectedCall *self, PyObject *const *args, size_t nargsf,
                         PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 0 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "InjectedCall takes no arguments");
        return NULL;
    }
    PyObject *hooks = PyObject_GetAttr(self->site, hooks_name);
    if (hooks != NULL && !PyTuple_CheckExact(hooks)) {
        Py_DECREF(hooks);
        PyErr_SetString(PyExc_TypeError, "Site.hooks is not a tuple");
        hooks = NULL;
    }
    if (hooks == NULL) {
        if (report_failure(self->on_error, where_hook) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed: the frame of the probed code */
    if (PyTuple_GET_SIZE(hooks) == 0 || frame == NULL) {
        Py_DECREF(hooks);
        Py_RETURN_NONE;
    }
    Py_INCREF(frame);
    PyObject *frame_arg[2] = {NULL, (PyObject *)frame};
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(hooks); i++) {
        PyObject *result = PyObject_Vectorcall(PyTuple_GET_ITEM(hooks, i), frame_arg + 1,
                                               1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (result == NULL && report_failure(self->on_error, where_hook) < 0) {
            Py_DECREF(frame);
            Py_DECREF(hooks);
            return NULL;
        }
        Py_XDECREF(result);
    }
    Py_DECREF(frame);
    Py_DECREF(hooks);
    Py_RETURN_NONE;
}

static PyObject *
injected_call_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *site, *on_error;
    static char *names[] = {"site", "on_error", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO:InjectedCall", names, &site,
                                     &on_error)) {
        return NULL;
    }
    InjectedCall *self = (InjectedCall *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(site);
    Py_INCREF(on_error);
    self->site = site;
    self->on_error = on_error;
    self->vectorcall = (vectorcallfunc)injected_call_vectorcall;
    return (PyObject *)self;
}

static int
injected_call_traverse(InjectedCall *self, visitproc visit, void *arg)
{
    Py_VISIT(self->site);
    Py_VISIT(self->on_error);
    return 0;
}

static int
injected_call_clear(InjectedCall *self)
{
    Py_CLEAR(self->site);
    Py_CLEAR(self->on_error);
    return 0;
}

static void
injected_call_dealloc(InjectedCall *self)
{
    PyObject_GC_UnTrack(self);
    injected_call_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject InjectedCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "peephole.agent._speedups.InjectedCall",
    .tp_doc = "InjectedCall(site, on_error): calls the site's hooks with the caller's frame.",
    .tp_basicsize = sizeof(InjectedCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = injected_call_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(InjectedCall, vectorcall),
    .tp_traverse = (traverseproc)injected_call_traverse,
    .tp_clear = (inquiry)injected_call_clear,
    .tp_dealloc = (destructor)injected_call_dealloc,
};

#endif /* < 3.12 */

#if PY_VERSION_HEX >= 0x030C0000

/* --- InstructionCallback ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *sites;    /* id(code) -> offset -> Site (the backend's own dicts) */
    PyObject *disable;  /* sys.monitoring.DISABLE */
    PyObject *on_error; /* internal_error(where, exc) */
    vectorcallfunc vectorcall;
} InstructionCallback;

static PyObject *where_text; /* "the instruction callback" */

static PyObject *
instruction_callback_failed(InstructionCallback *self)
{
    /* As the Python callback's ``except Exception``: reported, never raised into the
       application; a BaseException (KeyboardInterrupt, SystemExit) goes on. */
    if (report_failure(self->on_error, where_text) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *instruction_callback_hit(InstructionCallback *self, PyObject *const *args);

static PyObject *
instruction_callback_vectorcall(InstructionCallback *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "InstructionCallback takes (code, offset)");
        return NULL;
    }
    /* sys.monitoring calls its callbacks through a borrowed reference: a hook (Agent.stop()
       on any thread) can unregister this callback while it runs, so it holds itself. */
    Py_INCREF(self);
    PyObject *result = instruction_callback_hit(self, args);
    Py_DECREF(self);
    return result;
}

static PyObject *
instruction_callback_hit(InstructionCallback *self, PyObject *const *args)
{
    PyObject *key = PyLong_FromVoidPtr(args[0]); /* id(code) */
    if (key == NULL) {
        return instruction_callback_failed(self);
    }
    PyObject *table = PyDict_GetItemWithError(self->sites, key);
    Py_DECREF(key);
    if (table == NULL) {
        return PyErr_Occurred() ? instruction_callback_failed(self) : Py_NewRef(self->disable);
    }
    PyObject *site = PyDict_GetItemWithError(table, args[1]);
    if (site == NULL) {
        return PyErr_Occurred() ? instruction_callback_failed(self) : Py_NewRef(self->disable);
    }
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed: the frame the event is for */
    if (frame == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *hooks = PyObject_GetAttr(site, hooks_name);
    if (hooks == NULL) {
        return instruction_callback_failed(self);
    }
    if (!PyTuple_CheckExact(hooks)) {
        Py_DECREF(hooks);
        PyErr_SetString(PyExc_TypeError, "Site.hooks is not a tuple");
        return instruction_callback_failed(self);
    }
    PyObject *frame_arg[2] = {NULL, (PyObject *)frame};
    Py_INCREF(frame);
    Py_ssize_t count = PyTuple_GET_SIZE(hooks);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *result = PyObject_Vectorcall(PyTuple_GET_ITEM(hooks, i), frame_arg + 1,
                                               1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (result == NULL) {
            Py_DECREF(frame);
            Py_DECREF(hooks);
            return instruction_callback_failed(self);
        }
        Py_DECREF(result);
    }
    Py_DECREF(frame);
    Py_DECREF(hooks);
    Py_RETURN_NONE;
}

static PyObject *
instruction_callback_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *sites, *disable, *on_error;
    static char *names[] = {"sites", "disable", "on_error", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OO:InstructionCallback", names,
                                     &PyDict_Type, &sites, &disable, &on_error)) {
        return NULL;
    }
    InstructionCallback *self = (InstructionCallback *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->sites = Py_NewRef(sites);
    self->disable = Py_NewRef(disable);
    self->on_error = Py_NewRef(on_error);
    self->vectorcall = (vectorcallfunc)instruction_callback_vectorcall;
    return (PyObject *)self;
}

static int
instruction_callback_traverse(InstructionCallback *self, visitproc visit, void *arg)
{
    Py_VISIT(self->sites);
    Py_VISIT(self->disable);
    Py_VISIT(self->on_error);
    return 0;
}

static int
instruction_callback_clear(InstructionCallback *self)
{
    Py_CLEAR(self->sites);
    Py_CLEAR(self->disable);
    Py_CLEAR(self->on_error);
    return 0;
}

static void
instruction_callback_dealloc(InstructionCallback *self)
{
    PyObject_GC_UnTrack(self);
    instruction_callback_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject InstructionCallbackType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "peephole.agent._speedups.InstructionCallback",
    .tp_doc = "InstructionCallback(sites, disable, on_error): a sys.monitoring INSTRUCTION "
              "callback.",
    .tp_basicsize = sizeof(InstructionCallback),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = instruction_callback_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(InstructionCallback, vectorcall),
    .tp_traverse = (traverseproc)instruction_callback_traverse,
    .tp_clear = (inquiry)instruction_callback_clear,
    .tp_dealloc = (destructor)instruction_callback_dealloc,
};

#endif /* >= 3.12 */

/* --- the module ------------------------------------------------------------------------ */

static PyMethodDef speedups_methods[] = {
    {"mapping_entries", (PyCFunction)(void (*)(void))mapping_entries, METH_FASTCALL,
     "mapping_entries(pairs, keys, key_info, scalars, show, entry_of, depth, location)"},
    {"named_values", (PyCFunction)(void (*)(void))named_values, METH_FASTCALL,
     "named_values(pairs, out, limit, names, name_info, scalars, walk, depth, location, "
     "secret)"},
    {"item_nodes", (PyCFunction)(void (*)(void))item_nodes, METH_FASTCALL,
     "item_nodes(shown, scalars, walk, depth, location)"},
    {"same_traceback", (PyCFunction)(void (*)(void))same_traceback, METH_FASTCALL,
     "same_traceback(tb, entries)"},
    {"stack_of", (PyCFunction)(void (*)(void))stack_of, METH_FASTCALL,
     "stack_of(frame, max_frames)"},
    {"frame_records", (PyCFunction)(void (*)(void))frame_records, METH_FASTCALL,
     "frame_records(frames, codes, code_info)"},
#if PY_VERSION_HEX < 0x030B0000 || (PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000)
    {"frame_vars", (PyCFunction)frame_vars, METH_O,
     "frame_vars(frame): the frame's variables as a mapping read on demand."},
#endif
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
    hooks_name = PyUnicode_InternFromString("hooks");
    t_text = PyUnicode_InternFromString("t");
    v_text = PyUnicode_InternFromString("v");
    int_text = PyUnicode_InternFromString("int");
    bool_text = PyUnicode_InternFromString("bool");
    line_text = PyUnicode_InternFromString("line");
    if (hooks_name == NULL || t_text == NULL || v_text == NULL || int_text == NULL ||
        bool_text == NULL || line_text == NULL) {
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    where_hook = PyUnicode_FromString("a probe hook");
    if (where_hook == NULL || PyType_Ready(&InjectedCallType) < 0) {
        return -1;
    }
    Py_INCREF(&InjectedCallType);
    if (PyModule_AddObject(module, "InjectedCall", (PyObject *)&InjectedCallType) < 0) {
        Py_DECREF(&InjectedCallType);
        return -1;
    }
#endif
#if PY_VERSION_HEX >= 0x030C0000
    where_text = PyUnicode_FromString("the instruction callback");
    if (where_text == NULL) {
        return -1;
    }
    if (PyType_Ready(&InstructionCallbackType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "InstructionCallback",
                              (PyObject *)&InstructionCallbackType) < 0) {
        return -1;
    }
#endif
#if PY_VERSION_HEX < 0x030B0000 || (PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000)
    if (PyType_Ready(&FrameVarsType) < 0) {
        return -1;
    }
#endif
    return 0;
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* Static types and strings: one interpreter per process only. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "peephole.agent._speedups",
    .m_doc = "The agent's optional C speed-ups (see peephole/agent/speedups.py).",
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
