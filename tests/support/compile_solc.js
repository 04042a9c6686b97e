#!/usr/bin/env node
// Compile one solc standard-JSON input with a solc-js build from node_modules.
//
// Usage: node compile_solc.js <solc package name>   (standard JSON on stdin, output JSON on stdout)
//
// The caller embeds every source in the input, so no import callback is offered:
// a missing import must fail loudly instead of being read from some other place on disk.
'use strict';

const path = require('path');

function main() {
  const pkg = process.argv[2];
  if (!pkg) {
    process.stderr.write('usage: compile_solc.js <solc package name> < input.json\n');
    process.exit(2);
  }
  let solc;
  try {
    // Resolve from the repository root (two folders up), not from the caller's cwd.
    const root = path.resolve(__dirname, '..', '..');
    solc = require(require.resolve(pkg, { paths: [root] }));
  } catch (err) {
    process.stderr.write(`cannot load ${pkg}: ${err.message}\n`);
    process.exit(3);
  }
  const chunks = [];
  process.stdin.on('data', (chunk) => chunks.push(chunk));
  process.stdin.on('end', () => {
    const input = Buffer.concat(chunks).toString('utf8');
    const output = solc.compile(input, {
      import: (p) => ({ error: `import not provided in the input: ${p}` }),
    });
    process.stdout.write(output);
  });
}

main();
