// Produce a JSONL file to Kafka with KafkaJS: shares to the shares topic keyed
// by promoter_id, everything else to the events topic keyed by buyer_id.
// usage: node produce.js BROKER EVENTS_TOPIC SHARES_TOPIC FILE [none|gzip|snappy]
const fs = require('fs');
const { Kafka, logLevel, Partitioners, CompressionTypes, CompressionCodecs } = require('kafkajs');

const [broker, eventsTopic, sharesTopic, file, codec = 'none'] = process.argv.slice(2);
if (codec === 'snappy') CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy');
const compression = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy }[codec];
const kafka = new Kafka({ clientId: 'interop-kafkajs', brokers: [broker], logLevel: logLevel.ERROR });

(async () => {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const byTopic = { [eventsTopic]: [], [sharesTopic]: [] };
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const event = JSON.parse(line);
    const isShare = event.type === 'share';
    byTopic[isShare ? sharesTopic : eventsTopic].push({ key: isShare ? event.promoter_id : event.buyer_id, value: line });
  }
  for (const [topic, messages] of Object.entries(byTopic)) {
    for (let i = 0; i < messages.length; i += 500) {
      await producer.send({ topic, acks: -1, compression, messages: messages.slice(i, i + 500) });
    }
  }
  await producer.disconnect();
  console.log(`produced ${byTopic[eventsTopic].length} events, ${byTopic[sharesTopic].length} shares`);
})().catch((err) => { console.error(err); process.exit(1); });
