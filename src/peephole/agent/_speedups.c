/* The two steps of a sys.monitoring hit that cost the most in Python, in C (3.12+ only).
 *
 * Optional, as coverage.py's CTracer is: the agent works the same without it (see
 * peephole/agent/speedups.py, which picks this module or the pure-Python equivalents), and
 * setup.py builds it only where a C compiler is found.
 *
 * LineCallback: the LINE event callback of placement/instrument/monitoring.py, step for
 *     step: look the code object and line up in the backend's tables (DISABLE when there is
 *     no probe there), then call the hooks of the statement the frame is at. As a C callable
 *     it has no Python frame of its own: the running frame is the probed one.
 * frame_vars(frame): a mapping of a function frame's variables that reads each one when
 *     asked (PyFrame_GetVar), for evaluating a probe's condition; for any other frame (a
 *     module or class body, exec) its f_locals, the mapping its variables live in. On 3.12
 *     frame.f_locals copies every local into a new dict on each hit, a third of a false
 *     condition's cost; 3.13's f_locals is already such a view (PEP 667), and this module
 *     offers none there.
 *
 * Neither runs code of the application: dict lookups use int and str keys only, and the
 * hooks called are the agent's own.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#if PY_VERSION_HEX >= 0x030C0000

/* --- LineCallback --------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *lines;    /* id(code) -> line -> offset -> Site (the backend's own dicts) */
    PyObject *disable;  /* sys.monitoring.DISABLE */
    PyObject *on_error; /* internal_error(where, exc) */
    vectorcallfunc vectorcall;
} LineCallback;

static PyObject *hooks_name; /* "hooks", interned */
static PyObject *where_text; /* "the line callback" */

static PyObject *
line_callback_failed(LineCallback *self)
{
    /* As the Python callback's ``except Exception``: reported, never raised into the
       application; a BaseException (KeyboardInterrupt, SystemExit) goes on. */
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return NULL;
    }
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *result = PyObject_CallFunctionObjArgs(self->on_error, where_text, exc, NULL);
    Py_DECREF(exc);
    if (result == NULL) {
        /* internal_error does not fail; an interrupt while it runs goes on, as in Python */
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return NULL;
        }
        PyErr_Clear();
    }
    Py_XDECREF(result);
    Py_RETURN_NONE;
}

static PyObject *line_callback_hit(LineCallback *self, PyObject *const *args);

static PyObject *
line_callback_vectorcall(LineCallback *self, PyObject *const *args, size_t nargsf,
                         PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "LineCallback takes (code, line)");
        return NULL;
    }
    /* sys.monitoring calls its callbacks through a borrowed reference: a hook (Agent.stop()
       on any thread) can unregister this callback while it runs, so it holds itself. */
    Py_INCREF(self);
    PyObject *result = line_callback_hit(self, args);
    Py_DECREF(self);
    return result;
}

static PyObject *
line_callback_hit(LineCallback *self, PyObject *const *args)
{
    PyObject *key = PyLong_FromVoidPtr(args[0]); /* id(code) */
    if (key == NULL) {
        return line_callback_failed(self);
    }
    PyObject *table = PyDict_GetItemWithError(self->lines, key);
    Py_DECREF(key);
    if (table == NULL) {
        return PyErr_Occurred() ? line_callback_failed(self) : Py_NewRef(self->disable);
    }
    PyObject *sites = PyDict_GetItemWithError(table, args[1]);
    if (sites == NULL) {
        return PyErr_Occurred() ? line_callback_failed(self) : Py_NewRef(self->disable);
    }
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed: the frame the event is for */
    if (frame == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *offset = PyLong_FromLong(PyFrame_GetLasti(frame));
    if (offset == NULL) {
        return line_callback_failed(self);
    }
    PyObject *site = PyDict_GetItemWithError(sites, offset);
    Py_DECREF(offset);
    if (site == NULL) {
        return PyErr_Occurred() ? line_callback_failed(self) : Py_NewRef(Py_None);
    }
    PyObject *hooks = PyObject_GetAttr(site, hooks_name);
    if (hooks == NULL) {
        return line_callback_failed(self);
    }
    if (!PyTuple_CheckExact(hooks)) {
        Py_DECREF(hooks);
        PyErr_SetString(PyExc_TypeError, "Site.hooks is not a tuple");
        return line_callback_failed(self);
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
            return line_callback_failed(self);
        }
        Py_DECREF(result);
    }
    Py_DECREF(frame);
    Py_DECREF(hooks);
    Py_RETURN_NONE;
}

static PyObject *
line_callback_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *lines, *disable, *on_error;
    static char *names[] = {"lines", "disable", "on_error", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OO:LineCallback", names, &PyDict_Type,
                                     &lines, &disable, &on_error)) {
        return NULL;
    }
    LineCallback *self = (LineCallback *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->lines = Py_NewRef(lines);
    self->disable = Py_NewRef(disable);
    self->on_error = Py_NewRef(on_error);
    self->vectorcall = (vectorcallfunc)line_callback_vectorcall;
    return (PyObject *)self;
}

static int
line_callback_traverse(LineCallback *self, visitproc visit, void *arg)
{
    Py_VISIT(self->lines);
    Py_VISIT(self->disable);
    Py_VISIT(self->on_error);
    return 0;
}

static int
line_callback_clear(LineCallback *self)
{
    Py_CLEAR(self->lines);
    Py_CLEAR(self->disable);
    Py_CLEAR(self->on_error);
    return 0;
}

static void
line_callback_dealloc(LineCallback *self)
{
    PyObject_GC_UnTrack(self);
    line_callback_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject LineCallbackType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "peephole.agent._speedups.LineCallback",
    .tp_doc = "LineCallback(lines, disable, on_error): a sys.monitoring LINE callback.",
    .tp_basicsize = sizeof(LineCallback),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = line_callback_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(LineCallback, vectorcall),
    .tp_traverse = (traverseproc)line_callback_traverse,
    .tp_clear = (inquiry)line_callback_clear,
    .tp_dealloc = (destructor)line_callback_dealloc,
};

/* --- frame_vars ------------------------------------------------------------------------ */

#if PY_VERSION_HEX < 0x030D0000

typedef struct {
    PyObject_HEAD
    PyFrameObject *frame;
} FrameVars;

/* A new reference to the variable's value, or NULL with no error set when the frame has no
   bound variable of that name (PyFrame_GetVar's NameError is cleared), or NULL with an
   error. Only exact str keys are looked up: nothing else can name a variable. */
static PyObject *
frame_vars_lookup(FrameVars *self, PyObject *name)
{
    if (!PyUnicode_CheckExact(name)) {
        return NULL;
    }
    PyObject *value = PyFrame_GetVar(self->frame, name);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_NameError)) {
        PyErr_Clear();
    }
    return value;
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
        return PyFrame_GetLocals((PyFrameObject *)frame);
    }
    FrameVars *self = PyObject_GC_New(FrameVars, &FrameVarsType);
    if (self == NULL) {
        return NULL;
    }
    self->frame = (PyFrameObject *)Py_NewRef(frame);
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

#endif /* < 3.13 */
#endif /* >= 3.12 */

/* --- the module ------------------------------------------------------------------------ */

static PyMethodDef speedups_methods[] = {
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    {"frame_vars", (PyCFunction)frame_vars, METH_O,
     "frame_vars(frame): the frame's variables as a mapping read on demand."},
#endif
    {NULL, NULL, 0, NULL},
};

static int
speedups_exec(PyObject *module)
{
#if PY_VERSION_HEX >= 0x030C0000
    hooks_name = PyUnicode_InternFromString("hooks");
    where_text = PyUnicode_FromString("the line callback");
    if (hooks_name == NULL || where_text == NULL) {
        return -1;
    }
    if (PyType_Ready(&LineCallbackType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "LineCallback", (PyObject *)&LineCallbackType) < 0) {
        return -1;
    }
#if PY_VERSION_HEX < 0x030D0000
    if (PyType_Ready(&FrameVarsType) < 0) {
        return -1;
    }
#endif
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
