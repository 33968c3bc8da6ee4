import { Type } from '@sinclair/typebox';
import { NotFoundError } from '../../lib/errors';
import type { ApiRoutes } from '../operation';
import { openApiDocument } from '../openapi';
import { CreatedToken, NoQuery, TOKEN_NAME_PATTERN, TokenBody, TokenPage } from '../schemas';
import type { TokenStore } from '../storage/token-store';
import { guardDb } from '../storage/database';
import { issueToken, tokenView } from '../tokens';
import { answers, errorAnswer } from './answers';

/** The API's description, and the tokens that open it (admin). */
export function addMetaRoutes(routes: ApiRoutes, tokens: TokenStore, options: { version: string; taskTypes: readonly string[]; auth: boolean }): void {
  let document: unknown = null;
  routes.add({
    id: 'openapi', method: 'get', path: '/openapi.json', tag: 'meta', scope: null, query: NoQuery,
    summary: 'This document',
    answers: { 200: { description: 'the OpenAPI 3.1 document', schema: Type.Object({ openapi: Type.String() }) }, 400: errorAnswer(400), 500: errorAnswer(500) },
  }, async (ctx) => {
    // Made once, from every route, when first asked for (all routes are added by then).
    document ??= openApiDocument(routes.operations, options);
    ctx.body = document;
  });

  routes.add({
    id: 'listTokens', method: 'get', path: '/tokens', tag: 'tokens', scope: 'admin', query: NoQuery,
    summary: 'The API\'s tokens (names, scopes, use; never their secrets)',
    answers: answers({ 200: { description: 'every token, revoked ones too', schema: TokenPage } }, [400]),
  }, async (ctx) => {
    ctx.body = { tokens: (await guardDb(() => tokens.list())).map(tokenView) };
  });

  routes.add({
    id: 'createToken', method: 'post', path: '/tokens', tag: 'tokens', scope: 'admin', query: NoQuery, body: TokenBody,
    summary: 'Create a token; the answer holds the only copy of its secret',
    answers: answers({ 201: { description: 'the token', schema: CreatedToken } }, [400, 409, 413, 415]),
  }, async (ctx, { body }) => {
    const { token, stored } = await guardDb(() => issueToken(tokens, body.name, body.scopes));
    ctx.status = 201;
    ctx.body = { name: stored.name, scopes: stored.scopes, token };
  });

  routes.add({
    id: 'revokeToken', method: 'delete', path: '/tokens/:name', tag: 'tokens', scope: 'admin', query: NoQuery,
    params: { name: TokenBody.properties.name },
    summary: 'Revoke a token (its name stays taken, and in the history of what it did)',
    answers: answers({ 200: { description: 'the revoked token', schema: TokenPage.properties.tokens.items } }, [400, 404]),
  }, async (ctx) => {
    if (!TOKEN_NAME_PATTERN.test(ctx.params.name)) throw new NotFoundError(`no token named '${ctx.params.name}'`);
    ctx.body = tokenView(await guardDb(() => tokens.revoke(ctx.params.name, new Date())));
  });
}
