import { loadSigningKey } from '../config/loader';
import type { Config } from '../config/schema';
import { brokerAddresses, formatAddress } from '../protocol/rabbitmq/hosts';
import { publicKeyLine } from '../protocol/task-signature';

/**
 * What the endpoint trusts (docs/security.md "Signed tasks"): the keys this configuration trusts, else the public key
 * of the one it signs with; with neither, the server side does not sign, and the endpoint is told not to
 * require signatures (the production mode would otherwise refuse to start it).
 */
function trustOf(config: Config): Record<string, string> {
  const trusted = config.manager.trust.public_keys.length > 0 ? [...config.manager.trust.public_keys]
    : config.api.signing.private_key !== '' ? [publicKeyLine(loadSigningKey(config))] : [];
  return trusted.length > 0 ? { TASKER_MANAGER__TRUST__PUBLIC_KEYS: trusted.join(',') } : { TASKER_MANAGER__TRUST__REQUIRED: 'false' };
}

/**
 * The command that starts this endpoint's manager on its own host: every broker setting it needs, as the
 * overrides every mode reads (a mode's own variables, such as production's TASKER_MQ_*, may differ).
 */
export function endpointHostCommand(config: Config, name: string, password: string): string {
  const mq = config.manager.message_queue;
  const hosts = brokerAddresses(mq).map(formatAddress).join(',');
  const quote = (v: string): string => (/^[A-Za-z0-9_.,:@%/+=-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);
  const env = {
    TASKER_MANAGER__MESSAGE_QUEUE__HOSTS: hosts,
    TASKER_MANAGER__MESSAGE_QUEUE__VIRTUAL_HOST: mq.virtual_host,
    TASKER_MANAGER__MESSAGE_QUEUE__USERNAME: name,
    TASKER_MANAGER__MESSAGE_QUEUE__PASSWORD: password,
    ...mq.tls.enabled ? { TASKER_MANAGER__MESSAGE_QUEUE__TLS__ENABLED: 'true' } : {},
    ...trustOf(config),
  };
  return `${Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`).join(' ')} npm run manager -- --endpoint ${name} --mode ${config.mode}`;
}
