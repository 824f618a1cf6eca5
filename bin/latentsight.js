#!/usr/bin/env node
// Launcher for the `latentsight` command: loads the TypeScript CLI through tsx (no build step)
// and turns its return value into the process exit code.
import { tsImport } from 'tsx/esm/api';

const { runCli } = await tsImport('../src/cli/index.ts', import.meta.url);
process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
