import type { Kafka } from 'kafkajs';

/**
 * Creates the topics that do not exist yet and waits until each has a leader; existing topics are
 * left as they are (their partition count is never changed: that would move keys between partitions
 * and break per-key order). Returns the names it created.
 */
export async function ensureTopics(kafka: Kafka, names: readonly string[], partitions: number, replicationFactor: number): Promise<string[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = [...new Set(names)].filter((name) => !existing.has(name));
    if (missing.length === 0) return [];
    // createTopics resolves false (not an error) when another process created one of them first.
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor })),
    });
    return missing;
  } finally {
    await admin.disconnect();
  }
}
