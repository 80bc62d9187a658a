/** `vipd`: the director daemon, and its offline config check. */
import { Command, Option } from 'commander';
import { checkConfigFiles, printCheckReport } from '../config/check.js';
import { formatProblem } from '../config/errors.js';
import { DEFAULT_CONFIG_FILE, loadConfig } from '../config/load.js';
import { Daemon } from '../coordinator/daemon.js';
import { VERSION } from '../version.js';

/** Exit codes: 0 ok, 1 invalid config (check-config), 2 cannot start (bad config or usage). */
const program = new Command('vipd')
  .description('L4 load-balancer director: IPVS, BGP (gobgpd), health checks, gratuitous ARP')
  .version(VERSION)
  .showHelpAfterError();

const collect = (v: string, prev: string[]): string[] => [...prev, v];

program
  .command('run', { isDefault: true })
  .description('run the daemon')
  .addOption(new Option('-c, --config <file>', 'config file (YAML or JSON)').env('VIPD_CONFIG').default(DEFAULT_CONFIG_FILE))
  .option('--set <key=value>', 'override a setting, e.g. --set log.level=debug (repeatable)', collect, [])
  .option('--strict', 'exit (2) on an invalid config instead of waiting, unconfigured, for a valid one')
  .action(async (opts: { config: string; set: string[]; strict?: boolean }) => {
    if (opts.strict) {
      const r = loadConfig({ file: opts.config, set: opts.set });
      if (!r.ok) {
        for (const p of r.problems) process.stderr.write(`${formatProblem(r.file, p)}\n`);
        process.exit(2);
      }
    }
    await Daemon.start({ load: { file: opts.config, set: opts.set } });
  });

program
  .command('check-config')
  .description('validate config files without running; exit 0 when all are valid, 1 otherwise')
  .argument('<files...>', 'config files')
  .option('--json', 'machine-readable output')
  .action((files: string[], opts: { json?: boolean }) => {
    process.exitCode = printCheckReport(checkConfigFiles(files), opts.json === true);
  });

await program.parseAsync(process.argv);
