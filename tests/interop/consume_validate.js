// A consumer nobody on this project wrote: read the relay's topic with KafkaJS
// and validate every message against the shipped JSON Schema with ajv.
// usage: node consume_validate.js BROKER TOPIC SCHEMA_FILE EXPECTED_MESSAGES [TIMEOUT_MS]
// Prints one JSON line: {messages, distinct, invalid, key_mismatch, errors, self_check}.
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');

const [broker, topic, schemaFile, expectedText, timeoutText] = process.argv.slice(2);
const expected = Number(expectedText);
const timeoutMs = Number(timeoutText || 120000);

const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
const validate = ajv.compile(JSON.parse(fs.readFileSync(schemaFile, 'utf8')));

// The validator must be able to say no: messages that break the contract.
const good = {
  type: 'commission.accrued', event_id: 'main:5:0', promoter_id: 'p', currency: 'CNY', amount_minor: 1,
  from: 'merchant', to: 'pending', level: 1, event_time: '2026-01-02T01:00:00.000000Z',
};
const bad = [
  { ...good, amount_minor: 0 },
  { ...good, from: 'expense' },
  { ...good, type: 'commission.created' },
  { ...good, currency: 'cny' },
  { ...good, level: 3 },
  { ...good, event_id: 'main-5-0' },
  { ...good, event_time: '2026-01-02 01:00:00' },
  (({ promoter_id, ...rest }) => rest)(good),
];
const selfCheck = validate(good) && bad.every((m) => !validate(m));

const kafka = new Kafka({ clientId: 'interop-kafkajs-relay', brokers: [broker], logLevel: logLevel.ERROR });
const consumer = kafka.consumer({ groupId: `interop-relay-${process.pid}-${Date.now()}`, sessionTimeout: 10000 });
const seen = new Set();
let messages = 0;
let invalid = 0;
let keyMismatch = 0;
const errors = [];

function finish(code) {
  console.log(JSON.stringify({ messages, distinct: seen.size, invalid, key_mismatch: keyMismatch, errors, self_check: selfCheck }));
  process.exit(code);
}

(async () => {
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const timer = setTimeout(async () => { await consumer.disconnect().catch(() => {}); finish(2); }, timeoutMs);
  await consumer.run({
    eachMessage: async ({ message }) => {
      messages += 1;
      let value;
      try {
        value = JSON.parse(message.value.toString('utf8'));
      } catch (err) {
        invalid += 1;
        if (errors.length < 5) errors.push(`not JSON: ${err}`);
        return;
      }
      if (!validate(value)) {
        invalid += 1;
        if (errors.length < 5) errors.push({ message: value, errors: validate.errors });
      } else if (message.key === null || message.key.toString('utf8') !== value.promoter_id) {
        keyMismatch += 1;
      }
      seen.add(value.event_id);
      if (messages >= expected) {
        clearTimeout(timer);
        setImmediate(async () => { await consumer.disconnect().catch(() => {}); finish(0); });
      }
    },
  });
})().catch((err) => { console.error(err); finish(1); });
