/**
 * The models this build of the edge serves: `models/manifest.json` and every codec's entropy table
 * file, bundled into the Worker (tables as Data modules, see the `[[rules]]` in wrangler.toml).
 *
 * Adding a codec to the manifest means adding its table file here, one import and one entry, and
 * so does every file in a codec's `legacy_tables` (earlier versions' tables, still decoded); the
 * workers test `models.test.ts` fails until every codec of the manifest loads.
 */
import manifest from '../../models/manifest.json';
import lsF8Q1Tables from '../../models/ls-f8-q1/tables.lst';
import lsF8Q1Tables010 from '../../models/ls-f8-q1/tables-0.1.0.lst';
import lsF8Q2Tables from '../../models/ls-f8-q2/tables.lst';
import lsF8Q2Tables020 from '../../models/ls-f8-q2/tables-0.2.0.lst';
import lsF8Q3Tables from '../../models/ls-f8-q3/tables.lst';
import type { TableFiles } from './registry.ts';

/** The parsed manifest, validated by `loadRegistry`. */
export const MANIFEST: unknown = manifest;

/** Table files by their manifest path (relative to `models/`). */
export const BUNDLED_TABLES: TableFiles = {
  'ls-f8-q1/tables.lst': lsF8Q1Tables,
  'ls-f8-q1/tables-0.1.0.lst': lsF8Q1Tables010,
  'ls-f8-q2/tables.lst': lsF8Q2Tables,
  'ls-f8-q2/tables-0.2.0.lst': lsF8Q2Tables020,
  'ls-f8-q3/tables.lst': lsF8Q3Tables,
};
