/** Names that travel on the wire and name broker resources; the configuration and the API check them too. */
export const TASK_TYPE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
export const ENDPOINT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Task type names that would collide with the server side's own exchanges and queues
 * (`<exchange>.responses`, `<exchange>.state`, `<exchange>.dead-letter`, `<exchange>.control`, `<exchange>.notify`).
 */
export const RESERVED_TASK_TYPES: readonly string[] = ['responses', 'state', 'dead-letter', 'control', 'notify'];
