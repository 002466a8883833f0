/** The unicorn command line: registers the commands, and turns errors into one clear line. */
import * as fs from 'node:fs';
import { Command } from 'commander';
import { benchCommand } from './commands/bench.js';
import { chatCommand } from './commands/chat.js';
import { doctorCommand } from './commands/doctor.js';
import { inspectCommand } from './commands/inspect.js';
import { loadCommand } from './commands/load.js';
import { quantizeCommand } from './commands/quantize.js';
import { listCommand } from './commands/list.js';
import { pullCommand } from './commands/pull.js';
import { psCommand, residentCommand, stopCommand } from './commands/resident.js';
import { runCommand } from './commands/run.js';
import { serveCommand } from './commands/serve.js';
import { exitCleanlyOnSignals } from './engine/formats/atomic.js';
import { reportError } from './ui/errors.js';
import { assumeTerminalSizes } from './ui/terminal.js';

const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('unicorn')
    .description('Run large language models locally on the GPU through Vulkan compute.')
    .version(pkg.version, '-v, --version')
    .option('--debug', 'print stack traces for errors')
    .showHelpAfterError('(run with --help for usage)');
  program.addCommand(pullCommand());
  program.addCommand(listCommand());
  program.addCommand(inspectCommand());
  program.addCommand(runCommand());
  program.addCommand(chatCommand());
  program.addCommand(quantizeCommand());
  program.addCommand(serveCommand());
  program.addCommand(loadCommand());
  program.addCommand(doctorCommand());
  program.addCommand(benchCommand());
  program.addCommand(psCommand());
  program.addCommand(stopCommand());
  program.addCommand(residentCommand(), { hidden: true });
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  exitCleanlyOnSignals();
  assumeTerminalSizes();
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    // A command may end with a failing status without an error (doctor with a FAIL).
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    return reportError(e, argv.includes('--debug'));
  }
}
