import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { BuildResult, Metafile } from 'esbuild';
import { projectRoot } from '../config/loader';

/** The endpoint package's folder in this repository. */
export const ENDPOINT_PACKAGE_DIR = path.join(projectRoot(), 'packages', 'tasker-endpoint');
/** The bundle's main file, the package's `bin`, under the package's folder. */
export const ENDPOINT_BIN = 'dist/tasker-endpoint.js';

/**
 * What the endpoint side must never carry: the server side's code, its storage, and the packages only it
 * uses (the SQLite driver above all, which needs a compiler to install).
 */
const FORBIDDEN_INPUTS: readonly RegExp[] = [
  /^api\//, /^scripts\/database\.ts$/,
  /node_modules\/(?:better-sqlite3|typeorm|mysql2|koa|@koa|pm2|croner|prom-client)\//,
];

/**
 * The bundle's entry points: the endpoint package's command, and every process entry point of the endpoint
 * side that its code starts by file name (`manager/<name>-worker.ts`, e.g. the handler pool's worker), each
 * bundled into a file of that name beside the command, where the code that starts it looks for it.
 */
export function endpointEntryPoints(root = projectRoot()): Record<string, string> {
  const workers = readdirSync(path.join(root, 'manager')).filter((f) => /^[a-z0-9-]+-worker\.ts$/.test(f)).sort();
  return {
    'tasker-endpoint': path.join(root, 'scripts', 'tasker-endpoint.ts'),
    ...Object.fromEntries(workers.map((f) => [f.slice(0, -'.ts'.length), path.join(root, 'manager', f)])),
  };
}

/** The inputs of a bundle that the endpoint side must not carry (relative to the project). */
export function forbiddenInputs(metafile: Metafile): string[] {
  return Object.keys(metafile.inputs).filter((input) => FORBIDDEN_INPUTS.some((re) => re.test(input)));
}

/** The packages of node_modules a bundle carries, by name, with the folder of each. */
export function bundledPackages(metafile: Metafile, root = projectRoot()): Map<string, string> {
  const packages = new Map<string, string>();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /^(.*node_modules\/((?:@[^/]+\/)?[^/]+))\//.exec(input);
    if (m) packages.set(m[2], path.join(root, m[1]));
  }
  return packages;
}

/**
 * The notices of the bundled packages (their licenses ask that they travel with copies of the code):
 * name, version and license of each, then the text of its license file.
 */
export function thirdPartyNotices(packages: Map<string, string>): string {
  const parts = [...packages].sort(([a], [b]) => a.localeCompare(b)).map(([name, dir]) => {
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: string; license?: string };
    const file = readdirSync(dir).find((f) => /^(?:licen[cs]e|copying)(?:\.md|\.txt)?$/i.test(f));
    const text = file === undefined ? '(no license file in the package)' : readFileSync(path.join(dir, file), 'utf8').trim();
    return `## ${name} ${pkg.version ?? ''} (${pkg.license ?? 'license not stated'})\n\n${text}\n`;
  });
  return `# Third-party software in this package\n\nThe bundle dist/tasker-endpoint.js includes these packages.\n\n${parts.join('\n')}`;
}

export interface BundleOptions {
  /** Folder of the bundle's files (default: the package's dist/). */
  outdir?: string;
  /** false: nothing is written (a check of what the bundle would hold). */
  write?: boolean;
}

/**
 * Bundles the endpoint side (scripts/tasker-endpoint.ts: the managers, the protocol, the configuration
 * loader, the handler contract, and the packages they use) into single CommonJS files for Node.js 20,
 * with no dependency left to install. Handler modules are loaded at run time from `manager.handlers_dir`
 * (a `require` of a path made from the configuration), so none is bundled.
 */
export async function bundleEndpoint(options: BundleOptions = {}): Promise<{ result: BuildResult & { metafile: Metafile }; outdir: string }> {
  const esbuild = await import('esbuild');
  const root = projectRoot();
  const outdir = options.outdir ?? path.join(ENDPOINT_PACKAGE_DIR, 'dist');
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: endpointEntryPoints(root),
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    metafile: true,
    write: options.write ?? true,
    logLevel: 'silent',
    // Kept readable: a stack trace from an endpoint host names the project's own functions.
    minify: false,
    legalComments: 'eof',
  });
  const forbidden = forbiddenInputs(result.metafile);
  if (forbidden.length > 0) {
    throw new Error(`the endpoint bundle must not carry the server side, but it imports: ${forbidden.slice(0, 10).join(', ')}`);
  }
  return { result, outdir };
}
