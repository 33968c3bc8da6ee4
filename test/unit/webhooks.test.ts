import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import { EVENT, WEBHOOK_EVENT, webhookEventOf } from '../../api/lifecycle/states';
import { isPrivateAddress } from '../../api/webhooks/address';
import { WebhookService } from '../../api/webhooks/service';
import { newSecret, sign } from '../../api/webhooks/signature';

describe('webhooks', function () {
  it('sign the Standard Webhooks specification\'s test vector as it publishes it', function () {
    assert.equal(sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'),
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    assert.notEqual(sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265331, '{"test": 2432232314}'),
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('sign as the standardwebhooks package does, and it verifies what they sign', function () {
    const secret = newSecret();
    const ts = Math.floor(Date.now() / 1000);
    const body = JSON.stringify({ type: 'task.done', data: { n: 1 } });
    assert.equal(sign(secret, 'msg_1', ts, body), new Webhook(secret).sign('msg_1', new Date(ts * 1000), body));
    const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': String(ts), 'webhook-signature': sign(secret, 'msg_1', ts, body) };
    assert.deepEqual(new Webhook(secret).verify(body, headers), { type: 'task.done', data: { n: 1 } });
    assert.throws(() => new Webhook(newSecret()).verify(body, headers), /No matching signature/);
  });

  it('make secrets of whsec_ and 24 random bytes in base64, each new', function () {
    const a = newSecret();
    assert.match(a, /^whsec_[A-Za-z0-9+/]{32}$/);
    assert.equal(Buffer.from(a.slice(6), 'base64').length, 24);
    assert.notEqual(a, newSecret());
  });

  it('refuse loopback, private, link-local and reserved addresses, IPv4-mapped ones included, and take public ones', function () {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0',
      '224.0.0.1', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', 'not-an-address']) {
      assert.equal(isPrivateAddress(a), true, a);
    }
    for (const a of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700::1111', '::ffff:8.8.8.8']) assert.equal(isPrivateAddress(a), false, a);
  });

  it('are raised by the task\'s own changes and by failed responses only', function () {
    assert.equal(webhookEventOf(EVENT.CREATED), WEBHOOK_EVENT.TASK_CREATED);
    assert.equal(webhookEventOf(EVENT.DONE), WEBHOOK_EVENT.TASK_DONE);
    assert.equal(webhookEventOf(EVENT.INCOMPLETE), WEBHOOK_EVENT.TASK_INCOMPLETE);
    assert.equal(webhookEventOf(EVENT.STOPPED), WEBHOOK_EVENT.TASK_STOPPED);
    assert.equal(webhookEventOf(EVENT.CANCELLED), WEBHOOK_EVENT.TASK_CANCELLED);
    assert.equal(webhookEventOf(EVENT.SENT), null);
    assert.equal(webhookEventOf(EVENT.FINISHED, [{ errnr: 0 }]), null);
    assert.equal(webhookEventOf(EVENT.FINISHED, [{ errnr: 0 }, { errnr: 3 }]), WEBHOOK_EVENT.RESPONSE_FAILED);
    assert.equal(webhookEventOf(EVENT.TIMED_OUT, [{ errnr: 127 }]), WEBHOOK_EVENT.RESPONSE_FAILED);
  });

  it('take https URLs only unless api.webhooks.allow_http, naming the field', async function () {
    // Refused before the store is touched.
    const strict = new WebhookService(null as never, null as never, { taskTypes: ['worker'], allowHttp: false, settleMs: 0, rotationOverlapMs: 0 });
    await assert.rejects(strict.create({ url: 'http://hooks.example.com/x', events: ['task.done'] }, null),
      /url: must be https:\/\/ \(http:\/\/ only with api\.webhooks\.allow_http\)/);
    await assert.rejects(strict.create({ url: 'https://hooks.example.com/x#frag', events: ['task.done'] }, null), /url: must not have a fragment/);
    await assert.rejects(strict.create({ url: 'https://hooks.example.com/x', events: ['task.done'], types: ['nope'] }, null), /types: unknown task type 'nope'/);
    const lax = new WebhookService(null as never, null as never, { taskTypes: ['worker'], allowHttp: true, settleMs: 0, rotationOverlapMs: 0 });
    await assert.rejects(lax.create({ url: 'file:///etc/passwd', events: ['task.done'] }, null), /url: must be https:\/\/ or http:\/\//);
  });
});
