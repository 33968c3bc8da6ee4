import assert from 'node:assert/strict';
import { checkCapacity } from '../../bench/fleet';

const MB = 2 ** 20;
const node = (usedMb: number, limitMb: number): { mem_used: number; mem_limit: number; fd_used: number; sockets_used: number } =>
  ({ mem_used: usedMb * MB, mem_limit: limitMb * MB, fd_used: 0, sockets_used: 0 });

describe('the fleet bench\'s capacity check', function () {
  it('lets a fleet the machine holds start', function () {
    // 200 started: RabbitMQ at 220 MB (340 KB each), managers 400 MB; 1,000 in all need about 1.9 GB more.
    checkCapacity({ endpoints: 1000, started: 200, perEndpointMqBytes: 340 * 1024, mq: node(220, 9600), managersMb: 400, availableMb: 20_000 });
  });

  it('stops before RabbitMQ would pass its high watermark, with the figures', function () {
    assert.throws(() => checkCapacity({ endpoints: 10_000, started: 200, perEndpointMqBytes: 340 * 1024, mq: node(220, 2000), managersMb: 400, availableMb: 30_000 }),
      /cannot hold a fleet of 10000 \(measured on its first 200\): RabbitMQ would need about 3474 MB \(340 KB per connection\), past 90 % of its high watermark of 2000 MB\. Give fewer endpoints/);
  });

  it('stops when the managers and the broker would need more memory than is available', function () {
    assert.throws(() => checkCapacity({ endpoints: 10_000, started: 200, perEndpointMqBytes: 340 * 1024, mq: node(220, 0), managersMb: 400, availableMb: 8000 }),
      /the rest of the fleet would need about 22854 MB more \(managers 2048 KB and RabbitMQ 340 KB per endpoint\), and 8000 MB are available/);
  });
});
