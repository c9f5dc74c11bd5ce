import { logger as libp2pLogger } from '@libp2p/logger';

/**
 * A logger per component. `debug` lines are off unless `DEBUG=github-p2p-cache:*` (the `debug` convention
 * libp2p uses); warnings and errors always reach the sink, which defaults to stderr.
 * Nothing passed to a logger may contain a token: callers log scope ids, never credentials.
 */
export interface Logger {
  debug(message: string, ...args: unknown[]): void;
  warn(message: string, ...args: unknown[]): void;
  error(message: string, ...args: unknown[]): void;
}

/** Where warnings and errors go. Replace it (option `logSink`) to route them into your own logging. */
export interface LogSink {
  warn(component: string, message: string): void;
  error(component: string, message: string): void;
}

export const stderrSink: LogSink = {
  warn: (component, message) => process.stderr.write(`github-p2p-cache:${component} warning: ${message}\n`),
  error: (component, message) => process.stderr.write(`github-p2p-cache:${component} error: ${message}\n`),
};

function format(message: string, args: unknown[]): string {
  if (args.length === 0) return message;
  return `${message} ${args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`;
}

export function createLogger(component: string, sink: LogSink = stderrSink): Logger {
  const debug = libp2pLogger(`github-p2p-cache:${component}`);
  return {
    debug: (message, ...args) => debug(message, ...args),
    warn: (message, ...args) => sink.warn(component, format(message, args)),
    error: (message, ...args) => sink.error(component, format(message, args)),
  };
}
