/**
 * Machines on one machine, for specs: a Linux bridge in the root network namespace with an address of its own
 * (where a fake GitHub can listen), and members that are each a network namespace of their own, joined to the
 * bridge by a veth pair (`eth0` inside, with a 10.x address, loopback up, and a multicast route so mDNS has an
 * interface to send on).
 *
 * Guarantees:
 * - Names carry the creating process's pid (`gpcnet-<pid>-<i>` namespaces, `gpc<pid>b` bridge, `gpc<pid>h<i>`
 *   veths), and the subnet is derived from it and checked against the addresses in use, so parallel runs do not
 *   clash. `removeLeftovers()` removes only namespaces and links of this prefix whose pid is dead.
 * - `NetLab.cleanup()` removes every namespace, veth and bridge this lab created (what a failed step left
 *   half-made included), never throws, and may be called more than once.
 * - `netnsUnavailable()` says why namespaces cannot be used here (not root, `ip` missing, EPERM) instead of
 *   failing, so a spec can skip with the reason; it leaves nothing behind.
 * - Nothing here routes or forwards: traffic stays between the bridge and the members.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where iproute2 lives on Debian, Ubuntu and the CI image. */
export const IP = '/usr/sbin/ip';
const PREFIX = 'gpc';

async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run(IP, args, { timeout: 15_000 });
  return stdout;
}

/** Why network namespaces cannot be used by this process, or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces are Linux only (this is ${process.platform})`;
  if (!existsSync(IP)) return `${IP} (iproute2) is not installed`;
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root (uid 0)';
  const probe = `${PREFIX}net-${process.pid}-probe`;
  try {
    await ip('netns', 'add', probe);
  } catch (err) {
    return `\`ip netns add\` failed: ${firstLine(err)}`;
  }
  await ip('netns', 'del', probe).catch(() => undefined);
  return undefined;
}

/** Removes the namespaces and links of this prefix left by processes that are gone (a run killed mid-way). */
export async function removeLeftovers(): Promise<void> {
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  const namespaces = (await ip('netns', 'list').catch(() => '')).split('\n').map((line) => line.split(' ')[0] ?? '');
  for (const name of namespaces) {
    const pid = new RegExp(`^${PREFIX}net-(\\d+)-`).exec(name)?.[1];
    if (pid !== undefined && !alive(Number(pid))) await ip('netns', 'del', name).catch(() => undefined);
  }
  const links = (await ip('-o', 'link', 'show').catch(() => '')).split('\n').map((line) => /^\d+: ([^:@]+)/.exec(line)?.[1] ?? '');
  for (const name of links) {
    const pid = new RegExp(`^${PREFIX}(\\d+)[bh]`).exec(name)?.[1];
    if (pid !== undefined && !alive(Number(pid))) await ip('link', 'del', name).catch(() => undefined);
  }
}

/** One member: a namespace with `eth0` on the bridge. */
export interface NetMember {
  readonly index: number;
  /** The namespace's name, for `ip netns exec`. */
  readonly ns: string;
  /** The veth's end on the bridge side (root namespace): setting it down cuts the member off. */
  readonly veth: string;
  /** The member's address on the bridge's subnet. */
  readonly address: string;
}

export class NetLab {
  /** The bridge's address: the root namespace on the lab's subnet (e.g. where a fake GitHub listens). */
  readonly gateway: string;
  readonly bridge: string;
  readonly members: NetMember[] = [];
  readonly #subnet: string;
  readonly #namespaces = new Set<string>();
  readonly #links = new Set<string>();
  #next = 0;

  private constructor(subnet: string) {
    this.#subnet = subnet;
    this.gateway = `${subnet}.1`;
    this.bridge = `${PREFIX}${process.pid}b`;
  }

  /** Creates the bridge (up, with `<subnet>.1/24`); on failure removes what it made and throws. */
  static async create(): Promise<NetLab> {
    const lab = new NetLab(await freeSubnet());
    try {
      lab.#links.add(lab.bridge);
      await ip('link', 'add', 'name', lab.bridge, 'type', 'bridge');
      await ip('addr', 'add', `${lab.gateway}/24`, 'dev', lab.bridge);
      await ip('link', 'set', lab.bridge, 'up');
    } catch (err) {
      await lab.cleanup();
      throw err;
    }
    return lab;
  }

  /** Adds a member namespace on the bridge, with `<subnet>.<index + 2>/24` on its `eth0`. */
  async addMember(): Promise<NetMember> {
    const index = this.#next++;
    const member: NetMember = {
      index,
      ns: `${PREFIX}net-${process.pid}-${index}`,
      veth: `${PREFIX}${process.pid}h${index}`,
      address: `${this.#subnet}.${index + 2}`,
    };
    this.#namespaces.add(member.ns);
    await ip('netns', 'add', member.ns);
    this.#links.add(member.veth);
    await ip('link', 'add', member.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', member.ns);
    await ip('link', 'set', member.veth, 'master', this.bridge);
    await ip('link', 'set', member.veth, 'up');
    const inside = (...args: string[]) => ip('-n', member.ns, ...args);
    await inside('link', 'set', 'lo', 'up');
    await inside('addr', 'add', `${member.address}/24`, 'dev', 'eth0');
    await inside('link', 'set', 'eth0', 'up');
    // A namespace has no default route: without one for 224.0.0.0/4, sending to the mDNS group fails with
    // ENETUNREACH. (A real machine's default route serves.)
    await inside('route', 'add', '224.0.0.0/4', 'dev', 'eth0');
    this.members.push(member);
    return member;
  }

  /** Sets the bridge side of a member's veth down (a partition: the member reaches nothing) or up (heal). */
  async setLink(member: NetMember, state: 'up' | 'down'): Promise<void> {
    await ip('link', 'set', member.veth, state);
  }

  /**
   * Whether a TCP connection from inside `member`'s namespace to `host`:`port` opens within 2 s. A link that just
   * came back may still fail to reach an address for a moment (its neighbour entries are relearnt), as a replugged
   * machine's would: a spec waits on this before it counts on the path.
   */
  async canReach(member: NetMember, host: string, port: number): Promise<boolean> {
    const probe = "const s = require('net').connect(Number(process.argv[2]), process.argv[1]); s.setTimeout(2000, () => process.exit(1));"
      + " s.on('connect', () => process.exit(0)); s.on('error', () => process.exit(1));";
    return run(IP, this.exec(member, process.execPath, '-e', probe, host, String(port)), { timeout: 15_000 }).then(() => true, () => false);
  }

  /** The arguments that run `command` inside a member's namespace: spawn(IP, lab.exec(member, ...)). */
  exec(member: NetMember, ...command: string[]): string[] {
    return ['netns', 'exec', member.ns, ...command];
  }

  /** Removes every namespace (their veths go with them) and the bridge. Never throws; idempotent. */
  async cleanup(): Promise<void> {
    for (const ns of [...this.#namespaces]) {
      await ip('netns', 'del', ns).catch(() => undefined);
      this.#namespaces.delete(ns);
    }
    for (const link of [...this.#links]) {
      await ip('link', 'del', link).catch(() => undefined);
      this.#links.delete(link);
    }
  }
}

/** A /24 in 10.100.0.0–10.199.255.0 derived from the pid, the next one while it overlaps an address in use. */
async function freeSubnet(): Promise<string> {
  const used = await ip('-o', '-4', 'addr', 'show').catch(() => '');
  for (let n = process.pid; n < process.pid + 256; n++) {
    const subnet = `10.${100 + ((n >> 8) % 100)}.${n & 255}`;
    if (!used.includes(` ${subnet}.`)) return subnet;
  }
  throw new Error('no free 10.x /24 for the lab');
}

function firstLine(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(err)).split('\n')[0]!;
}
