import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { MeasurementWindow, processTree } from '../../bench/window.js';

// A parent that idles and a child of it that spins: the window must count the child's CPU too.
const SPINNING_CHILD = `
const { spawn } = require('node:child_process');
const child = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
console.log(child.pid);
setInterval(() => {}, 1000);
process.on('SIGTERM', () => { child.kill('SIGKILL'); process.exit(0); });
`;

test('a window over a process tree counts the CPU of its children, its wall time and RSS', async () => {
  const parent = spawn(process.execPath, ['-e', SPINNING_CHILD], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(parent.stdout, 'data')) as [Buffer];
    const childPid = Number(line.toString().trim());
    assert.deepEqual(processTree(parent.pid!), [parent.pid, childPid]);
    const window = MeasurementWindow.start(parent.pid!);
    await sleep(400);
    window.sample();
    const reading = window.stop();
    assert.ok(reading.wallSeconds >= 0.4, `wall ${reading.wallSeconds} s`);
    // The spinning child alone is one busy core; an idle parent would give about 0.
    assert.ok(reading.cpuSeconds >= 0.1, `cpu ${reading.cpuSeconds} s over ${reading.wallSeconds} s`);
    assert.equal(reading.rssKiB.length, 1);
    assert.ok(reading.rssKiB[0]! > 2 * 10_000, `two Node processes hold more than 20 MiB: ${reading.rssKiB[0]} KiB`);
    assert.ok(reading.toUs - reading.fromUs >= 400_000);
  } finally {
    parent.kill('SIGTERM');
    await once(parent, 'exit');
  }
});
