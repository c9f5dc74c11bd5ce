/**
 * Log capture: loggers that keep what they are told instead of printing it, so a caller can assert on
 * warnings and errors and a run stays quiet. Nothing is formatted or dropped: each message is kept as given
 * (CapturingSink prefixes its component).
 */
import type { Logger } from '../src/log.js';

/** A {@link Logger} that keeps warnings and errors for assertions; debug output is dropped. */
export class RecordingLogger implements Logger {
  readonly warnings: string[] = [];
  readonly errors: string[] = [];
  debug(_message: string, ..._args: unknown[]): void {}
  warn(message: string): void {
    this.warnings.push(message);
  }
  error(message: string): void {
    this.errors.push(message);
  }
}

/** A sink with a component per message (the cache's `logSink` shape): collects `component: message`. */
export class CapturingSink {
  readonly warnings: string[] = [];
  readonly errors: string[] = [];
  warn(component: string, message: string): void {
    this.warnings.push(`${component}: ${message}`);
  }
  error(component: string, message: string): void {
    this.errors.push(`${component}: ${message}`);
  }
}
