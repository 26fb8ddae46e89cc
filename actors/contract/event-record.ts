/** One Kafka record as this codebase produces it: text key and value, text headers. */
export interface KafkaRecord {
  readonly topic: string;
  readonly key: string;
  readonly value: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Epoch milliseconds as a decimal string (kafkajs' format): the record's CreateTime. */
  readonly timestamp?: string;
}
