/**
 * TCP connections of one process, counted from Linux's /proc: the sockets the process holds (`/proc/<pid>/fd`)
 * matched against the kernel's socket tables (`/proc/<pid>/net/tcp`, `tcp6`). Guarantees a count of ESTABLISHED
 * sockets of that process only, with a local or remote port among `ports` (a fleet's listen ports: its members'
 * connections to each other, not their HTTP connections to GitHub), or with `localOnly` a local port among them
 * (the accepting ends: one per connection), or undefined where /proc cannot tell (not Linux, the process gone).
 */
import fs from 'node:fs';

const ESTABLISHED = '01';

export function tcpConnectionsOf(pid: number, ports: ReadonlySet<number>, localOnly = false): number | undefined {
  let inodes: Set<string>;
  try {
    inodes = new Set();
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
      try {
        const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        const match = /^socket:\[(\d+)\]$/.exec(link);
        if (match !== null) inodes.add(match[1]!);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return undefined;
  }
  let count = 0;
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || fields[3] !== ESTABLISHED || !inodes.has(fields[9]!)) continue;
      const port = (address: string) => parseInt(address.slice(address.lastIndexOf(':') + 1), 16);
      if (ports.has(port(fields[1]!)) || (!localOnly && ports.has(port(fields[2]!)))) count++;
    }
  }
  return count;
}

/** CPU time (user + system) of a process in ms, from /proc/<pid>/stat (clock ticks of 10 ms), or undefined. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}
