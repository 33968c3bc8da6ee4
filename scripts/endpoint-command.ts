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

/** Quoted for a POSIX shell where needed (a password may hold any character of base64url). */
function shellQuote(v: string): string {
  return /^[A-Za-z0-9_.,:@%/+=-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

/**
 * Every broker setting this endpoint's manager needs on its own host, as the overrides every mode reads
 * (a mode's own variables, such as production's TASKER_MQ_*, may differ).
 */
export function endpointHostEnv(config: Config, name: string, password: string): Record<string, string> {
  const mq = config.manager.message_queue;
  return {
    TASKER_MANAGER__MESSAGE_QUEUE__HOSTS: brokerAddresses(mq).map(formatAddress).join(','),
    TASKER_MANAGER__MESSAGE_QUEUE__VIRTUAL_HOST: mq.virtual_host,
    TASKER_MANAGER__MESSAGE_QUEUE__USERNAME: name,
    TASKER_MANAGER__MESSAGE_QUEUE__PASSWORD: password,
    ...mq.tls.enabled ? { TASKER_MANAGER__MESSAGE_QUEUE__TLS__ENABLED: 'true' } : {},
    ...trustOf(config),
  };
}

/** The command that starts this endpoint's manager on its own host. */
export function endpointHostCommand(config: Config, name: string, password: string): string {
  const env = endpointHostEnv(config, name, password);
  return `${Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}`).join(' ')} npm run manager -- --endpoint ${name} --mode ${config.mode}`;
}

/**
 * The same settings as a file for the endpoint's host, with its mode and name (`TASKER_ENDPOINT` names the
 * manager pm2 starts in the production configuration): read by a shell (`set -a; . FILE; set +a`) or by
 * systemd (`EnvironmentFile=`).
 */
export function endpointEnvFile(config: Config, name: string, password: string): string {
  const env = { TASKER_MODE: config.mode, TASKER_ENDPOINT: name, ...endpointHostEnv(config, name, password) };
  return `# tasker endpoint '${name}': its broker user's secret; readable by the service only\n`
    + Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}\n`).join('');
}
