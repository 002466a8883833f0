/**
 * Typed errors. Every error a user can cause (bad file, bad config, missing hardware) is a
 * UnicornError: the CLI prints its message as one line, without a stack trace.
 */
export class UnicornError extends Error {
  /** A short hint on how to fix the problem, printed after the message. */
  readonly hint: string | undefined;
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options?.hint;
  }
}

/** A safetensors file (or sharded checkpoint) that is malformed, truncated or inconsistent. */
export class SafetensorsError extends UnicornError {
  readonly file: string;
  readonly tensor: string | undefined;
  constructor(file: string, problem: string, tensor?: string, options?: { hint?: string; cause?: unknown }) {
    super(`${file}: ${tensor === undefined ? '' : `tensor '${tensor}': `}${problem}`, options);
    this.file = file;
    this.tensor = tensor;
  }
}

/** A config.json (or its companions) that unicorn cannot turn into a ModelSpec. */
export class ConfigError extends UnicornError {}

/** A checkpoint whose tensors do not match what its config says the model needs. */
export class CheckpointError extends UnicornError {}

/** A model shape the GPU kernels do not serve (refused before anything runs, never computed wrong). */
export class UnsupportedShapeError extends UnicornError {}

/** An output could not be written (disk full, permissions). Nothing partial is left behind. */
export class WriteError extends UnicornError {}
