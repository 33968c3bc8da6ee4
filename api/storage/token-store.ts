import type { DataSource, Repository } from 'typeorm';
import { ConflictError, NotFoundError } from '../../lib/errors';
import { isDuplicateKey } from './database';
import { ApiTokenEntity } from './entities/api-token';
import type { ApiToken } from './rows';

/** The API's bearer tokens, as stored: names, scopes and hashes of their secrets. */
export class TokenStore {
  private readonly repo: Repository<ApiToken>;

  constructor(ds: DataSource) {
    this.repo = ds.getRepository(ApiTokenEntity);
  }

  async create(token: Omit<ApiToken, 'id' | 'last_used_time' | 'revoked_time'>): Promise<ApiToken> {
    try {
      return await this.repo.save({ ...token, last_used_time: null, revoked_time: null });
    } catch (err) {
      if (isDuplicateKey(err)) throw new ConflictError('token_exists', `a token named '${token.name}' exists (revoked tokens keep their names)`);
      throw err;
    }
  }

  findByKey(key: string): Promise<ApiToken | null> {
    return this.repo.findOneBy({ key });
  }

  list(): Promise<ApiToken[]> {
    return this.repo.find({ order: { name: 'ASC' } });
  }

  async revoke(name: string, now: Date): Promise<ApiToken> {
    const token = await this.repo.findOneBy({ name });
    if (!token) throw new NotFoundError(`no token named '${name}'`);
    if (token.revoked_time === null) {
      await this.repo.update({ id: token.id }, { revoked_time: now });
      token.revoked_time = now;
    }
    return token;
  }

  async touch(id: number, now: Date): Promise<void> {
    await this.repo.update({ id }, { last_used_time: now });
  }
}
