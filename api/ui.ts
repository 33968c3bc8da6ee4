import { readdirSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Middleware } from 'koa';
import { projectRoot } from '../config/loader';
import { NotFoundError } from '../lib/errors';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

// The page holds no data and runs only its own files; every data call it makes carries the token.
const HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-cache',
};

/**
 * The dashboard's static files at `/ui/`. Only the files found in `ui/` when the app is made are served,
 * looked up by name in that list, so no request path ever reaches the file system. A path under `/ui/`
 * that names no file is a 404 here, not a task route that would ask for a token.
 */
export function uiMiddleware(dir = path.join(projectRoot(), 'ui')): Middleware {
  const files = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[path.extname(name)];
    if (type) files.set(name, type);
  }
  return async (ctx, next) => {
    if (ctx.path === '/ui') {
      ctx.status = 301;
      ctx.redirect('/ui/');
      return;
    }
    // The API has nothing at its root; a person who opens it in a browser wants the dashboard.
    if (ctx.path === '/' && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      ctx.status = 302;
      ctx.redirect('/ui/');
      return;
    }
    if (!ctx.path.startsWith('/ui/')) return next();
    const name = ctx.path === '/ui/' ? 'index.html' : ctx.path.slice('/ui/'.length);
    const type = files.get(name);
    if (!type) throw new NotFoundError(`no file ${ctx.path}`);
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.set('Allow', 'GET, HEAD');
      ctx.throw(405, `${ctx.method} is not allowed on ${ctx.path}`);
    }
    const file = path.join(dir, name);
    const info = await stat(file);
    ctx.set(HEADERS);
    ctx.type = type;
    ctx.lastModified = info.mtime;
    ctx.etag = `W/"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = await readFile(file);
  };
}
