/** A strict reader of the Prometheus text exposition format, and promtool as an independent one. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

/**
 * A strict reader of the Prometheus text format: every line is a comment (# HELP/# TYPE/# UNIT/# EOF)
 * or `name{label="value",...} number`, label values use exactly the escapes \\, \" and \n, and
 * nothing else may follow. Returns the samples with unescaped label values.
 */
export function strictParse(body: string): { samples: Array<{ name: string; labels: Record<string, string>; value: number }>; names: string[] } {
  const samples: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  const names = new Set<string>();
  const lines = body.split('\n');
  assert.equal(lines.pop(), '', 'the body ends with a newline');
  for (const line of lines) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      assert.match(line, /^# (HELP|TYPE|UNIT) [a-zA-Z_:][a-zA-Z0-9_:]* .*$|^# EOF$/, `comment line: ${JSON.stringify(line)}`);
      continue;
    }
    const head = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    assert.ok(head, `sample line: ${JSON.stringify(line)}`);
    const name = head[1]!;
    let i = name.length;
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      while (line[i] !== '}') {
        const key = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(i));
        assert.ok(key, `label at ${i} in ${JSON.stringify(line)}`);
        i += key[0].length;
        let value = '';
        for (;;) {
          const c = line[i];
          assert.ok(c !== undefined, `unterminated label value in ${JSON.stringify(line)}`);
          if (c === '"') break;
          if (c === '\\') {
            const e = line[i + 1];
            assert.ok(e === '\\' || e === '"' || e === 'n', `bad escape \\${e} in ${JSON.stringify(line)}`);
            value += e === 'n' ? '\n' : e;
            i += 2;
            continue;
          }
          value += c;
          i++;
        }
        i++;
        labels[key[1]!] = value;
        if (line[i] === ',') i++;
        else assert.equal(line[i], '}', `label separator in ${JSON.stringify(line)}`);
      }
      i++;
    }
    const rest = line.slice(i);
    assert.match(rest, /^ (-?[0-9.eE+-]+|[+-]Inf|NaN)( -?\d+)?$/, `value in ${JSON.stringify(line)}`);
    samples.push({ name, labels, value: Number(rest.trim().split(' ')[0]) });
    names.add(name);
  }
  return { samples, names: [...names].sort() };
}

/** Parse errors promtool reports for the exposition ('' = none), or undefined without promtool. */
export function promtoolParse(body: string): string | undefined {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  if (r.error) return undefined;
  // Lint findings (naming advice) are not parse errors; only the parser's complaints count here.
  return `${r.stdout}${r.stderr}`
    .split('\n')
    .filter((l) => /pars|error/i.test(l))
    .join('\n');
}
