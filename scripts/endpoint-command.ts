import type { Config } from '../config/schema';
import { brokerAddresses, formatAddress } from '../protocol/rabbitmq/hosts';

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
  };
  return `${Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`).join(' ')} npm run manager -- --endpoint ${name} --mode ${config.mode}`;
}
