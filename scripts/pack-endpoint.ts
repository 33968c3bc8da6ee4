import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { packageVersion } from '../config/loader';
import { bundledPackages, bundleEndpoint, ENDPOINT_BIN, ENDPOINT_PACKAGE_DIR, thirdPartyNotices } from './endpoint-bundle';

/**
 * `npm run pack:endpoint [-- --out DIR]`: the endpoint package (docs/endpoint-host.md). Bundles the
 * endpoint side into packages/tasker-endpoint/dist/, gives the package this project's version, and packs
 * it with `npm pack` into DIR (default: the package's folder). Prints the tarball's path last.
 */
async function packEndpoint(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
  const out = path.resolve((values.out as string | undefined) ?? ENDPOINT_PACKAGE_DIR);
  const dist = path.join(ENDPOINT_PACKAGE_DIR, 'dist');
  rmSync(dist, { recursive: true, force: true });
  const { result } = await bundleEndpoint({ outdir: dist });
  for (const w of result.warnings) process.stderr.write(`esbuild: ${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ''}\n`);
  chmodSync(path.join(ENDPOINT_PACKAGE_DIR, ENDPOINT_BIN), 0o755);
  const packages = bundledPackages(result.metafile);
  writeFileSync(path.join(dist, 'THIRD-PARTY-NOTICES.md'), thirdPartyNotices(packages));
  // One version for the project and its endpoint package: what an endpoint reports is the server side's.
  const manifestFile = path.join(ENDPOINT_PACKAGE_DIR, 'package.json');
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { version: string };
  const version = packageVersion();
  if (manifest.version !== version) {
    manifest.version = version;
    writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
    process.stderr.write(`packages/tasker-endpoint/package.json: version set to ${version}\n`);
  }
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  process.stderr.write(`bundled ${Object.keys(result.metafile.outputs).map((f) => path.basename(f)).join(', ')} (${Math.round(bytes / 1024)} KiB, ${packages.size} packages inside)\n`);
  mkdirSync(out, { recursive: true });
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: ENDPOINT_PACKAGE_DIR, encoding: 'utf8' })) as { filename: string }[];
  process.stdout.write(`${path.join(out, packed[0].filename)}\n`);
}

packEndpoint().catch((err: unknown) => {
  process.stderr.write(`pack:endpoint: ${(err as Error).message}\n`);
  process.exit(1);
});
