#!/usr/bin/env node
/*
 * Entry point of the browser tests: node run.mjs <test file>...
 * Prints TAP; exit status 1 when any test failed or the harness could not run.
 * See README.md for the environment each test file needs.
 */
import { main } from './harness.mjs';

const failed = await main(process.argv.slice(2));
process.exit(failed ? 1 : 0);
