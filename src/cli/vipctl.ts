/** `vipctl`: the local operator CLI. */
import { Command } from 'commander';
import { checkConfigFiles, printCheckReport } from '../config/check.js';
import { VERSION } from '../version.js';

/** Exit codes: 0 ok, 1 the answer is "no" (invalid config), 2 usage error, 3 daemon unreachable. */
const program = new Command('vipctl').description('inspect and steer the local vipd').version(VERSION).showHelpAfterError();

program
  .command('check-config')
  .description('validate config files; exit 0 when all are valid, 1 otherwise')
  .argument('<files...>', 'config files')
  .option('--json', 'machine-readable output')
  .action((files: string[], opts: { json?: boolean }) => {
    process.exitCode = printCheckReport(checkConfigFiles(files), opts.json === true);
  });

await program.parseAsync(process.argv);
