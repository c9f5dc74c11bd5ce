import { getEventListeners } from 'node:events';
import { expect } from 'chai';
import { RequestTable, type Answer } from '../src/p2p/request-table.js';

/**
 * Watches the timers that code run inside `arming()` sets (the table sets its request timers synchronously in
 * open and extend), until each fires or is cleared. Counting the process's timers instead would also count
 * whatever other specs left running.
 */
class TimerWatch {
  readonly live = new Set<NodeJS.Timeout>();
  readonly #setTimeout = globalThis.setTimeout;
  readonly #clearTimeout = globalThis.clearTimeout;

  constructor() {
    const clear = this.#clearTimeout;
    globalThis.clearTimeout = ((timer?: NodeJS.Timeout | string | number) => {
      if (typeof timer === 'object') this.live.delete(timer);
      clear(timer);
    }) as typeof clearTimeout;
  }

  arming<T>(fn: () => T): T {
    const set = this.#setTimeout;
    globalThis.setTimeout = ((callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
      const timer = set(() => {
        this.live.delete(timer);
        callback(...args);
      }, ms);
      this.live.add(timer);
      return timer;
    }) as typeof setTimeout;
    try {
      return fn();
    } finally {
      globalThis.setTimeout = set;
    }
  }

  restore(): void {
    globalThis.clearTimeout = this.#clearTimeout;
  }
}

/** Resolves with `answer`'s value, or 'pending' if it has not settled within `ms`. */
async function within(answer: Promise<Answer>, ms: number): Promise<Answer | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  try {
    return await Promise.race([answer, late]);
  } finally {
    clearTimeout(timer);
  }
}

const SEALED = new Uint8Array([1, 2, 3]);

describe('RequestTable (in-flight requests on one stream)', () => {
  it('gives every request in flight its own id', () => {
    const table = new RequestTable();
    const ids = Array.from({ length: 100 }, () => table.open(10_000).id);
    expect(new Set(ids).size).to.equal(100);
    expect(table.size).to.equal(100);
    table.closeAll();
  });

  it('settles a request with its answer, exactly once: a second answer for the id is refused', async () => {
    const table = new RequestTable();
    const { id, answer } = table.open(10_000);
    expect(table.settle(id, { kind: 'entry', sealed: SEALED })).to.equal(true);
    expect(table.settle(id, { kind: 'miss', reason: 'no-entry' })).to.equal(false);
    expect(await answer).to.deep.equal({ kind: 'entry', sealed: SEALED });
    expect(table.size).to.equal(0);
  });

  it('routes each answer to its own request when several are in flight', async () => {
    const table = new RequestTable();
    const first = table.open(10_000);
    const second = table.open(10_000);
    table.settle(second.id, { kind: 'miss', reason: 'busy' });
    table.settle(first.id, { kind: 'error', message: 'upstream failed' });
    expect(await first.answer).to.deep.equal({ kind: 'error', message: 'upstream failed' });
    expect(await second.answer).to.deep.equal({ kind: 'miss', reason: 'busy' });
  });

  it('reports an answer or a heartbeat for an id that is not in flight, and uses neither', () => {
    const table = new RequestTable();
    expect(table.settle(7, { kind: 'miss', reason: 'no-entry' })).to.equal(false);
    expect(table.extend(7)).to.equal(false);
    expect(table.size).to.equal(0);
  });

  it('settles with timeout after timeoutMs without news, and holds no timer once settled', async () => {
    const table = new RequestTable();
    const timers = new TimerWatch();
    try {
      const { answer } = timers.arming(() => table.open(30));
      expect(timers.live.size).to.equal(1);
      expect(await within(answer, 1_000)).to.deep.equal({ kind: 'timeout' });
      expect(table.size).to.equal(0);
      expect(timers.live.size).to.equal(0);
    } finally {
      timers.restore();
    }
  });

  it('an answered request leaves the table\'s one timer unref\'d (it holds nothing up), and closeAll clears it', async () => {
    const table = new RequestTable();
    const timers = new TimerWatch();
    try {
      const { id, answer } = timers.arming(() => table.open(60_000));
      expect(timers.live.size).to.equal(1);
      const [timer] = timers.live;
      expect(timer!.hasRef()).to.equal(true);
      table.settle(id, { kind: 'miss', reason: 'no-entry' });
      await answer;
      expect(timer!.hasRef(), 'unref\'d once no request is in flight').to.equal(false);
      // The next request takes the same timer (due earlier than its own timeout) and refs it again.
      const next = timers.arming(() => table.open(60_000));
      expect(timers.live.size).to.equal(1);
      expect(timer!.hasRef()).to.equal(true);
      table.closeAll();
      expect(await next.answer).to.deep.equal({ kind: 'closed' });
      expect(timers.live.size).to.equal(0);
    } finally {
      timers.restore();
    }
  });

  it('requests in flight share one timer, and requests made one after another set it once', async () => {
    const table = new RequestTable();
    const timers = new TimerWatch();
    let sets = 0;
    /** Runs `fn` with setTimeout counted (and watched). */
    const counting = <T>(fn: () => T): T => timers.arming(() => {
      const watched = globalThis.setTimeout;
      globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
        sets++;
        return watched(...args);
      }) as typeof setTimeout;
      try {
        return fn();
      } finally {
        globalThis.setTimeout = watched;
      }
    });
    try {
      const opened = counting(() => Array.from({ length: 50 }, () => table.open(60_000)));
      expect(sets, 'timers set for 50 requests in flight').to.equal(1);
      expect(timers.live.size).to.equal(1);
      for (const { id } of opened) table.settle(id, { kind: 'miss', reason: 'no-entry' });
      await Promise.all(opened.map((o) => o.answer));
      for (let i = 0; i < 50; i++) {
        const { id, answer } = counting(() => table.open(60_000));
        table.settle(id, { kind: 'miss', reason: 'no-entry' });
        await answer;
      }
      expect(sets, 'timers set for 50 more requests, one after another').to.equal(1);
      expect(timers.live.size).to.equal(1);
    } finally {
      table.closeAll();
      timers.restore();
    }
    expect(timers.live.size).to.equal(0);
  });

  it('times out each request at its own due, however many share the timer', async () => {
    const table = new RequestTable();
    const started = performance.now();
    const long = table.open(5_000);
    const short = table.open(40);
    const middle = table.open(120);
    const at = async (answer: Promise<Answer>) => {
      const value = await answer;
      return { value, after: performance.now() - started };
    };
    const [s, m] = await Promise.all([at(short.answer), at(middle.answer)]);
    expect(s.value).to.deep.equal({ kind: 'timeout' });
    expect(m.value).to.deep.equal({ kind: 'timeout' });
    expect(s.after).to.be.at.least(40);
    expect(m.after).to.be.at.least(120);
    expect(table.size).to.equal(1);
    expect(await within(long.answer, 20)).to.equal('pending');
    table.closeAll();
    expect(await long.answer).to.deep.equal({ kind: 'closed' });
  });

  it('keeps waiting while the other side says it is working (extend restarts the timeout)', async () => {
    const table = new RequestTable();
    const { id, answer } = table.open(60, undefined, 10_000);
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 40));
      expect(table.extend(id)).to.equal(true);
    }
    // 160 ms have passed, well past the 60 ms timeout, and the request is still in flight.
    expect(await within(answer, 0)).to.equal('pending');
    expect(table.settle(id, { kind: 'entry', sealed: SEALED })).to.equal(true);
    expect((await answer).kind).to.equal('entry');
  });

  it('keeps waiting while the other side is heard on the stream (alive, answering others first), then times out', async () => {
    const table = new RequestTable();
    const { id, answer } = table.open(60, undefined, 10_000);
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 40));
      table.heard();
    }
    expect(await within(answer, 0)).to.equal('pending');
    expect(await within(answer, 2_000)).to.deep.equal({ kind: 'timeout' });
    expect(table.extend(id)).to.equal(false);
  });

  it('does not time out a request because its own event loop was held up: it listens for another timeout', async () => {
    const table = new RequestTable();
    const { id, answer } = table.open(200, undefined, 10_000);
    const until = Date.now() + 600;
    while (Date.now() < until) {
      // this node's CPU is contended: no timer fires, no frame is read
    }
    // The late timer has fired (and any decision it deferred has run); the new one is a timeout away. (Timers
    // already overdue fire in this timers phase: a 0 ms wait lets them run without nearing the new one.)
    await new Promise((resolve) => setTimeout(resolve, 0));
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(await within(answer, 0)).to.equal('pending');
    expect(table.settle(id, { kind: 'entry', sealed: SEALED })).to.equal(true);
  });

  it('never extends past maxWaitMs, as told by its clock', async () => {
    let clock = 1_000_000;
    const table = new RequestTable(() => clock);
    const { id, answer } = table.open(50, undefined, 500);
    clock += 400;
    expect(table.extend(id)).to.equal(true);
    clock += 200; // 600 ms after opening: past maxWaitMs
    expect(table.extend(id)).to.equal(false);
    // It was still being worked on when its max wait ran out: withheld.
    expect(await within(answer, 1_000)).to.deep.equal({ kind: 'timeout', withheld: true });
  });

  it('marks withheld only a request extended until its max wait ran out, not one that merely timed out', async () => {
    const table = new RequestTable();
    const silent = table.open(20, undefined, 10_000);
    expect(await within(silent.answer, 1_000)).to.deep.equal({ kind: 'timeout' });
    const working = table.open(60, undefined, 120);
    const ticker = setInterval(() => table.extend(working.id), 20);
    try {
      expect(await within(working.answer, 1_000)).to.deep.equal({ kind: 'timeout', withheld: true });
    } finally {
      clearInterval(ticker);
    }
  });

  it('settles with aborted when the caller\'s signal aborts, and at once for a signal already aborted', async () => {
    const table = new RequestTable();
    const controller = new AbortController();
    const { answer } = table.open(60_000, controller.signal);
    controller.abort();
    expect(await within(answer, 100)).to.deep.equal({ kind: 'aborted' });
    expect(table.size).to.equal(0);
    const late = table.open(60_000, AbortSignal.abort());
    expect(await within(late.answer, 100)).to.deep.equal({ kind: 'aborted' });
    expect(table.size).to.equal(0);
  });

  it('holds one abort listener per caller signal, however many requests wait on it (adding one walks them all)', async () => {
    // A cache passes its one shutdown signal with every fleet fetch: 500 requests in flight were 500 listeners on
    // one AbortSignal, and Node's EventTarget walks its whole list on each add (a cost per request that grew with
    // the number in flight).
    const table = new RequestTable();
    const controller = new AbortController();
    const other = new AbortController();
    const opened = Array.from({ length: 500 }, () => table.open(60_000, controller.signal));
    const aside = table.open(60_000, other.signal);
    expect(getEventListeners(controller.signal, 'abort')).to.have.length(1);
    expect(getEventListeners(other.signal, 'abort')).to.have.length(1);
    // Answered one by one: the listener stays while any request waits on the signal, and after the last (idle).
    for (const { id } of opened.slice(0, 499)) table.settle(id, { kind: 'entry', sealed: SEALED });
    expect(getEventListeners(controller.signal, 'abort')).to.have.length(1);
    table.settle(opened[499]!.id, { kind: 'entry', sealed: SEALED });
    expect(getEventListeners(controller.signal, 'abort')).to.have.length(1);
    // Still one listener when requests come back on the signal, and its abort settles each of them (and only them).
    const again = [table.open(60_000, controller.signal), table.open(60_000, controller.signal)];
    expect(getEventListeners(controller.signal, 'abort')).to.have.length(1);
    controller.abort();
    for (const { answer } of again) expect(await within(answer, 100)).to.deep.equal({ kind: 'aborted' });
    expect(getEventListeners(controller.signal, 'abort')).to.have.length(0);
    expect(table.size).to.equal(1);
    table.settle(aside.id, { kind: 'miss', reason: 'no-entry' });
    expect(await within(aside.answer, 100)).to.deep.equal({ kind: 'miss', reason: 'no-entry' });
    // The idle signal's listener is kept until another signal goes idle (one is held at most).
    expect(getEventListeners(other.signal, 'abort')).to.have.length(1);
    const third = new AbortController();
    const last = table.open(60_000, third.signal);
    table.settle(last.id, { kind: 'miss', reason: 'no-entry' });
    expect(getEventListeners(other.signal, 'abort')).to.have.length(0);
    expect(getEventListeners(third.signal, 'abort')).to.have.length(1);
    // closeAll lets go of every signal, the idle one and those with requests in flight.
    table.open(60_000, other.signal);
    table.closeAll();
    expect(getEventListeners(other.signal, 'abort')).to.have.length(0);
    expect(getEventListeners(third.signal, 'abort')).to.have.length(0);
  });

  it('adds a signal\'s listener once for requests made one at a time on it, and still settles them on abort', async () => {
    // A fleet asking one key at a time passed its shutdown signal with each request: the listener was added with
    // each request and removed with its answer, an EventTarget add and remove per peer hit.
    const table = new RequestTable();
    const controller = new AbortController();
    let adds = 0;
    let removes = 0;
    const add = controller.signal.addEventListener.bind(controller.signal);
    const remove = controller.signal.removeEventListener.bind(controller.signal);
    controller.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      adds++;
      add(...args);
    }) as typeof add;
    controller.signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      removes++;
      remove(...args);
    }) as typeof remove;
    for (let i = 0; i < 50; i++) {
      const { id, answer } = table.open(60_000, controller.signal);
      table.settle(id, { kind: 'entry', sealed: SEALED });
      expect(await answer).to.deep.equal({ kind: 'entry', sealed: SEALED });
    }
    expect(adds).to.equal(1);
    expect(removes).to.equal(0);
    expect(table.size).to.equal(0);
    // The kept listener still serves: a request made after the idle time is settled by the abort.
    const waiting = table.open(60_000, controller.signal);
    controller.abort();
    expect(await within(waiting.answer, 100)).to.deep.equal({ kind: 'aborted' });
    expect(adds).to.equal(1);
    expect(getEventListeners(controller.signal, 'abort')).to.have.length(0);
    /** One request on `signal`, answered: the signal is left idle, its listener kept. */
    const leaveIdle = (signal: AbortSignal): void => {
      const { id } = table.open(60_000, signal);
      table.settle(id, { kind: 'miss', reason: 'no-entry' });
      expect(getEventListeners(signal, 'abort')).to.have.length(1);
    };
    // An idle signal that aborts with no request open drops its listener; the next request on another signal is answered.
    const aborting = new AbortController();
    leaveIdle(aborting.signal);
    aborting.abort();
    expect(getEventListeners(aborting.signal, 'abort')).to.have.length(0);
    const after = table.open(60_000, new AbortController().signal);
    table.settle(after.id, { kind: 'miss', reason: 'no-entry' });
    expect(await after.answer).to.deep.equal({ kind: 'miss', reason: 'no-entry' });
    expect(table.size).to.equal(0);
    // A table closed with no request in flight lets go of its idle signal too.
    const idle = new AbortController();
    leaveIdle(idle.signal);
    table.closeAll();
    expect(getEventListeners(idle.signal, 'abort')).to.have.length(0);
  });

  it('closeAll settles every request in flight with closed at once, and refuses new ones', async () => {
    const table = new RequestTable();
    const timers = new TimerWatch();
    let opened: Array<{ id: number; answer: Promise<Answer> }>;
    try {
      opened = timers.arming(() => [table.open(60_000), table.open(60_000), table.open(60_000)]);
      expect(timers.live.size).to.equal(1);
      table.closeAll();
      expect(timers.live.size).to.equal(0);
    } finally {
      timers.restore();
    }
    for (const { answer } of opened) expect(await within(answer, 100)).to.deep.equal({ kind: 'closed' });
    expect(table.size).to.equal(0);
    const after = table.open(60_000);
    expect(await within(after.answer, 100)).to.deep.equal({ kind: 'closed' });
    expect(table.size).to.equal(0);
    table.closeAll(); // idempotent
  });

  it('an answer after the request timed out is refused', async () => {
    const table = new RequestTable();
    const { id, answer } = table.open(10);
    expect(await within(answer, 1_000)).to.deep.equal({ kind: 'timeout' });
    expect(table.settle(id, { kind: 'entry', sealed: SEALED })).to.equal(false);
  });
});
