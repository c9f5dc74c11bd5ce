import type { Logger } from '../../src/log.js';

/** A logger that keeps warnings and errors for assertions instead of printing them. */
export class RecordingLogger implements Logger {
  readonly warnings: string[] = [];
  readonly errors: string[] = [];
  debug(): void {}
  warn(message: string): void {
    this.warnings.push(message);
  }
  error(message: string): void {
    this.errors.push(message);
  }
}
