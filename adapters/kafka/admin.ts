import type { Admin, Kafka } from 'kafkajs';

/**
 * Creates the topics that do not exist yet and waits until each partition has a leader; existing
 * topics are left as they are (their partition count is never changed: that would move keys between
 * partitions and break per-key order). Returns the names it created.
 */
export async function ensureTopics(
  kafka: Kafka,
  names: readonly string[],
  partitions: number,
  replicationFactor: number,
  timeoutMs = 15_000,
  /** Topic configs for the topics it creates (e.g. retention.ms). */
  configs: Readonly<Record<string, string>> = {},
): Promise<string[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = [...new Set(names)].filter((name) => !existing.has(name));
    if (missing.length > 0) {
      // Resolves false (not an error) when another client created one of them first.
      const configEntries = Object.entries(configs).map(([name, value]) => ({ name, value }));
      await admin.createTopics({ waitForLeaders: false, topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor, configEntries })) });
    }
    await waitForLeaders(admin, [...new Set(names)], timeoutMs);
    return missing;
  } finally {
    await admin.disconnect();
  }
}

/**
 * kafkajs' own `waitForLeaders` only retries LEADER_NOT_AVAILABLE, but a Kafka 4 broker answers
 * UNKNOWN_TOPIC_OR_PARTITION for a moment after the topic was created, until its metadata cache has
 * the new topic (seen when two test files create topics at once). Both are retriable: wait them out.
 */
async function waitForLeaders(admin: Admin, topics: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let waitingFor: unknown;
    try {
      const metadata = await admin.fetchTopicMetadata({ topics: [...topics] });
      const leaderless = metadata.topics.filter((topic) => topic.partitions.length === 0 || topic.partitions.some((partition) => partition.leader < 0));
      if (metadata.topics.length === topics.length && leaderless.length === 0) return;
      waitingFor = `no leader yet for ${leaderless.map((topic) => topic.name).join(', ')}`;
    } catch (error) {
      if ((error as { retriable?: unknown }).retriable !== true) throw error;
      waitingFor = error;
    }
    if (Date.now() > deadline) {
      const reason = waitingFor instanceof Error ? waitingFor.message : String(waitingFor);
      throw new Error(`Kafka topics not ready after ${timeoutMs} ms: ${reason}`, { cause: waitingFor });
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
