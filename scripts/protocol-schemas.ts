import { PROTOCOL_SCHEMAS } from '../protocol/wire';

/**
 * `npm run protocol-schemas`: the JSON Schemas (draft 2020-12) of every message of the endpoint
 * protocol, for writing an endpoint in another language and checking its messages.
 */
const schemas = Object.fromEntries(PROTOCOL_SCHEMAS.map((s) => [s.$id as string, { $schema: 'https://json-schema.org/draft/2020-12/schema', ...s }]));
process.stdout.write(`${JSON.stringify(schemas, null, 2)}\n`);
