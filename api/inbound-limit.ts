import { MAX_ERRMSG_CHARS, MAX_RESPONSE_PAYLOAD_BYTES } from '../protocol/wire';

/**
 * Largest message body the server side parses from an endpoint: a result alone with the largest payload
 * (4 MiB as JSON) and error message, and room for the rest of the event and escapes. A bigger one is
 * dead-lettered without being parsed, since its JSON would take several times its size in memory.
 */
export const MAX_INBOUND_MESSAGE_BYTES = MAX_RESPONSE_PAYLOAD_BYTES + 4 * MAX_ERRMSG_CHARS + 1024 * 1024;
