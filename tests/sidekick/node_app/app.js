'use strict';
// A small Node app for the real Sidekick agent: every line on stdin is one checkout, so a
// test decides when the probed line runs. Broker host, port, key and names come from the
// SIDEKICK_* environment variables; nothing here knows about peephole.
const readline = require('readline');
const sidekick = require('@runsidekick/sidekick-agent-nodejs');

function checkout(cart, user) {
  const total = cart.items.reduce((sum, item) => sum + item.price * item.qty, 0);
  const discount = user.vip ? 5 : 0;
  return total - discount; // @checkout
}

let count = 0;
function handle(line) {
  count += 1;
  const cart = { id: `c${count}`, items: [{ sku: 'tea', price: 5, qty: 3 }] };
  const user = { name: 'alice', vip: line.trim() === 'vip' };
  const result = checkout(cart, user); // @call
  console.log(`done ${count} ${result}`); // @after
}

sidekick.start().then(
  () => console.log('agent started'),
  (error) => console.log(`agent failed ${error}`)
);
readline.createInterface({ input: process.stdin }).on('line', handle);
