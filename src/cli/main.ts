#!/usr/bin/env node
import { Command } from 'commander';
import { ConfigError } from '../config/load.js';
import { isGatewayError } from '../errors.js';
import { registerAdminCommands } from './admin-commands.js';
import { migrateCommand } from './database.js';
import { serve } from './serve.js';

const program = new Command();
program
  .name('token360')
  .description('Token360: a self-hostable, OpenAI-compatible LLM API gateway')
  .option('-c, --config <path>', 'config file (default: ./token360.yaml, or TOKEN360_CONFIG)')
  .showHelpAfterError();

program
  .command('serve')
  .description('run the gateway')
  .option('--host <host>', 'listen address (overrides the config and TOKEN360_HOST)')
  .option('--port <port>', 'listen port (overrides the config and TOKEN360_PORT)')
  .option('--workers <n>', 'run N processes sharing the port (default 1, or TOKEN360_WORKERS)')
  .action(async (opts: { host?: string; port?: string; workers?: string }) => serve(program.opts<{ config?: string }>().config, opts));

program
  .command('migrate')
  .description('create the database if needed and apply pending migrations')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => migrateCommand(program.opts<{ config?: string }>().config, opts.json === true));

registerAdminCommands(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  // Operators get the message, never a stack trace.
  if (e instanceof ConfigError) console.error(`token360: invalid configuration\n${e.message}`);
  else if (isGatewayError(e)) console.error(`token360: ${e.message}${e.param ? ` (${e.param})` : ''}`);
  else console.error(`token360: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
