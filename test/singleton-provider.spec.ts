import { expect } from 'chai';
import { SingletonProvider } from '../providers/singleton-provider.js';
import { CacheCreationError } from '../src/errors.js';

/** A stand-in instance that records its life cycle, so specs can check ordering. */
class Probe {
  static created = 0;
  readonly id: number;
  closed = false;
  closeCalls = 0;
  constructor(readonly options: { name: string }, private readonly log: string[]) {
    this.id = ++Probe.created;
    log.push(`create ${this.id} ${options.name}`);
  }
  async close(): Promise<void> {
    this.closeCalls++;
    if (this.closed) return;
    this.closed = true;
    this.log.push(`close ${this.id}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
    this.log.push(`closed ${this.id}`);
  }
}

function makeProvider(opts: { delayMs?: number; failTimes?: number } = {}) {
  const log: string[] = [];
  const instances: Probe[] = [];
  let failures = opts.failTimes ?? 0;
  const provider = new SingletonProvider<Probe, { name: string }>(async (options) => {
    log.push(`factory ${options.name}`);
    await new Promise((resolve) => setTimeout(resolve, opts.delayMs ?? 2));
    if (failures > 0) {
      failures--;
      throw new Error('port 9100 is busy');
    }
    const probe = new Probe(options, log);
    instances.push(probe);
    return probe;
  }, { name: 'initial' });
  return { provider, log, instances };
}

describe('SingletonProvider (the double-checked promise lock)', () => {
  for (const n of [10, 100, 10_000]) {
    it(`gives ${n} concurrent first callers one instance from one factory call`, async () => {
      const { provider, instances } = makeProvider();
      const results = await Promise.all(Array.from({ length: n }, () => provider.get()));
      expect(instances).to.have.length(1);
      expect(provider.stats().factoryCalls).to.equal(1);
      expect(new Set(results).size).to.equal(1);
      expect(results[0]).to.equal(instances[0]);
    });
  }

  it('returns the published instance synchronously through `current` and takes no lock on the fast path', async () => {
    const { provider } = makeProvider();
    expect(provider.current).to.equal(undefined);
    const instance = await provider.get();
    expect(provider.current).to.equal(instance);
    const a = provider.get();
    const b = provider.get();
    expect(a).to.equal(b, 'the fast path hands out the same resolved promise');
    expect(await a).to.equal(instance);
  });

  it('does not remember a failed creation: its waiters all get the error, the next call succeeds', async () => {
    const { provider, instances } = makeProvider({ failTimes: 1 });
    const first = await Promise.allSettled(Array.from({ length: 50 }, () => provider.get()));
    expect(first.every((r) => r.status === 'rejected')).to.equal(true);
    const reason = (first[0] as PromiseRejectedResult).reason as CacheCreationError;
    expect(reason).to.be.instanceOf(CacheCreationError);
    expect((reason.cause as Error).message).to.equal('port 9100 is busy');
    expect(provider.stats().factoryCalls).to.equal(1, 'the 49 waiters shared the one failed attempt');

    const second = await Promise.all(Array.from({ length: 50 }, () => provider.get()));
    expect(instances).to.have.length(1);
    expect(new Set(second).size).to.equal(1);
    expect(provider.stats()).to.include({ factoryCalls: 2, created: 1, failures: 1 });
  });

  it('creates a new instance when the published one was closed directly', async () => {
    const { provider } = makeProvider();
    const first = await provider.get();
    await first.close();
    const second = await provider.get();
    expect(second).to.not.equal(first);
    expect(second.closed).to.equal(false);
  });

  describe('configure', () => {
    it('waits for a creation in flight, closes the old instance, then creates the new one', async () => {
      const { provider, log, instances } = makeProvider({ delayMs: 5 });
      const getting = provider.get();
      while (!log.includes('factory initial')) await new Promise((resolve) => setImmediate(resolve));
      const configured = provider.configure({ name: 'second' }); // the first creation is in flight now
      const [old, current] = await Promise.all([getting, configured]);
      // The get() started before configure; it may not be handed an instance that configure closes.
      expect(old).to.equal(current);
      expect(current.options.name).to.equal('second');
      expect(instances).to.have.length(2);
      const closeAt = log.indexOf(`closed ${instances[0]!.id}`);
      const secondFactoryAt = log.indexOf('factory second');
      expect(closeAt).to.be.greaterThan(-1);
      expect(closeAt).to.be.lessThan(secondFactoryAt, log.join(', '));
    });

    for (const n of [5, 100]) {
      it(`applies ${n} concurrent configure calls in order, interleaved with get calls: one open instance with the last options`, async () => {
        const { provider, instances } = makeProvider({ delayMs: 1 });
        await provider.get();
        const handed: Probe[] = [];
        const closedAtHandoff: Probe[] = [];
        const track = (p: Promise<Probe>) =>
          p.then((instance) => {
            handed.push(instance);
            if (instance.closed) closedAtHandoff.push(instance);
            return instance;
          });
        const calls: Promise<Probe>[] = [];
        for (let i = 0; i < n; i++) {
          calls.push(track(provider.get()));
          calls.push(track(provider.configure({ name: `config-${i}` })));
          calls.push(track(provider.get()));
        }
        const lastConfigure = calls[calls.length - 2]!;
        const final = await lastConfigure;
        await Promise.all(calls);
        expect(final.options.name).to.equal(`config-${n - 1}`);
        const open = instances.filter((p) => !p.closed);
        expect(open).to.deep.equal([final]);
        expect(closedAtHandoff, 'no caller is handed a closed instance').to.have.length(0);
        expect(provider.current).to.equal(final);
        // Every instance but the last was closed exactly once by the provider.
        for (const p of instances) if (p !== final) expect(p.closeCalls).to.be.greaterThan(0);
      });
    }

    it('never hands a get() that starts after configure() the instance being replaced', async () => {
      const { provider } = makeProvider({ delayMs: 3 });
      const old = await provider.get();
      const configuring = provider.configure({ name: 'new' });
      const later = await provider.get();
      expect(later).to.not.equal(old);
      expect(later).to.equal(await configuring);
      expect(old.closed).to.equal(true);
    });

    it('lets a failed configure reach its waiters and the next get try again with the new options', async () => {
      const { provider } = makeProvider({ failTimes: 0 });
      await provider.get();
      provider.useFactory(async () => {
        throw new Error('cannot bind');
      });
      const results = await Promise.allSettled([provider.configure({ name: 'broken' }), provider.get()]);
      expect(results.map((r) => r.status)).to.deep.equal(['rejected', 'rejected']);
      const log: string[] = [];
      provider.useFactory(async (options) => new Probe(options, log));
      const recovered = await provider.get();
      expect(recovered.options.name).to.equal('broken', 'the configured options stay bound');
    });
  });

  it('skips a creation nobody needs: a get queued behind a configure takes the configure\'s instance', async () => {
    const { provider, log } = makeProvider();
    const [a, b] = await Promise.all([provider.get(), provider.configure({ name: 'configured' })]);
    expect(a).to.equal(b);
    expect(log.filter((l) => l.startsWith('factory'))).to.deep.equal(['factory configured']);
  });

  describe('shutdown', () => {
    it('closes the instance; the next get creates a new one', async () => {
      const { provider } = makeProvider();
      const first = await provider.get();
      await provider.shutdown();
      expect(first.closed).to.equal(true);
      expect(provider.current).to.equal(undefined);
      const second = await provider.get();
      expect(second).to.not.equal(first);
      expect(provider.stats()).to.include({ created: 2, closed: 1 });
    });
  });
});
