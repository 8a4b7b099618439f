"""The dead-letter topics (SPEC §9): a copy of each dead letter for the
upstream teams, on ``<topic>.dlq`` of the topic it came from — a bad event on
``<events-topic>.dlq``, a bad share on ``<shares-topic>.dlq``. The record of truth is the dead letter in the ledger,
committed with its batch; the copy is a convenience, and writing it never
stops, loops or holds up a partition for longer than its budget.

Delivery — at least once, never blocking:

- **Before the commit.** A batch's copies are sent after it is applied and
  before it is committed; the commit follows whatever became of them. A crash
  (or a lost commit race) between the two redelivers the batch and sends its
  copies again: a copy may be duplicated, but one that was acknowledged is
  never missing. (After the commit, a crash would lose copies silently.)
- **Checked.** Every ``send()`` is awaited on its future; whatever it raises
  or fails with is classified (``failure_reason``), never ignored.
- **Retried within a budget.** Copies whose send failed with a retriable
  error (a timeout, the broker or partition leader unavailable, the topic not
  known yet) are sent again after a pause that doubles from 0.1 s up to 1 s,
  while the batch's budget lasts: 3 s by default (``CopyPolicy``;
  ``LEDGER_DLQ_BUDGET_S`` for ``consume``). Non-retriable failures (too
  large, refused by the broker, an invalid topic name) are not retried: no
  pause could change their outcome. A send blocked on metadata (a topic that
  does not exist) waits at most ``max_block_ms`` (1 s, or the budget if
  smaller), so a batch waits at most budget + 1 s.
- **Given up, counted, logged.** A copy still not written when the budget is
  spent is logged with its source (topic, partition, offset) and reason, and
  counted in ``ledger_dlq_send_failures_total{reason}``. The batch commits;
  nothing is reopened, nothing is replayed. (A copy given up on while the
  client still holds it may yet arrive: the client expires it about one budget
  after it was sent, not the 2 minutes of its default.)
- **Sized.** The producer's ``max_request_size`` is the largest fetch
  response the consumer accepts (``receive_message_max_bytes``, at least
  ``fetch_max_bytes + max_partition_fetch_bytes``) plus room for the headers,
  so whatever the consumer can fetch, the producer may send. A copy still too
  large for the broker (its ``message.max.bytes``) is a counted failure.
- **Its own producer settings.** Not idempotent: an idempotent kafka-python
  producer that has one record refused (e.g. ``InvalidRecordError``) fails
  every later send with the same error, so one bad copy would lose all that
  follow; duplicates are allowed here anyway. ``retries=0``: the retries are
  ours, bounded by the budget, instead of the client's (2 minutes by default).
- **A topic that is missing or refusing is remembered.** A dead-letter topic
  that took none of a batch's copies (for a reason of the topic's, not of one
  copy's size) is not tried again for ``COOL_DOWN_S`` (60 s): meanwhile its
  copies are counted as failed at once (same reason) instead of each batch
  spending its budget on it, so no partition waits on it batch after batch.
  Timeouts and an unavailable broker count as the topic's only when the
  producer's metadata does not know the topic (a missing topic shows as a
  metadata timeout; a broker outage does not make a topic missing). A warning
  names the topic when the cool-down starts (and at start when the topic does
  not exist) and, when it ends, how many copies were skipped.
- **Shares once per process.** Every task applies every share (SPEC §1), so a
  bad share is a dead letter in each task's journal; its copy is sent by the
  first task of the process that applies it (``CopiedShares``). Several
  processes each send one: at least once.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError

from ledger.config import ConfigError
from ledger.records import DeadLetter

log = logging.getLogger("commission_ledger.consume")

DETAIL_MAX_BYTES = 500
HEADROOM_BYTES = 64 * 1024  # headers (detail ≤ 500 bytes) and record framing around the original bytes
MAX_BLOCK_S = 1.0  # the longest one send() may wait for metadata
LOGGED_PER_BATCH = 10  # failed copies logged one by one; the rest in one summary line
COOL_DOWN_S = 60.0  # a dead-letter topic that took none of a batch's copies is not tried again for this long
LETTER_REASONS = frozenset({"too_large"})  # failures of one copy, not of its topic
BROKER_REASONS = frozenset({"timeout", "broker_unavailable"})  # the topic's only if the metadata does not know it
BUDGET_ENV = "LEDGER_DLQ_BUDGET_S"


@dataclass(frozen=True)
class CopyPolicy:
    """How long a batch may spend on its copies, and the pauses between tries."""

    budget_s: float = 3.0
    first_pause_s: float = 0.1
    max_pause_s: float = 1.0

    def __post_init__(self) -> None:
        if not (self.budget_s > 0 and 0 < self.first_pause_s <= self.max_pause_s):
            raise ValueError(f"a copy policy needs budget > 0 and 0 < first pause ≤ max pause: {self}")

    @property
    def max_block_ms(self) -> int:
        return max(1, int(min(MAX_BLOCK_S, self.budget_s) * 1000))

    @property
    def request_timeout_ms(self) -> int:
        return max(1000, int(self.budget_s * 1000))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> CopyPolicy:
        """The default policy, with ``LEDGER_DLQ_BUDGET_S`` as its budget when set;
        ConfigError (one line, exit 2) when that is not a number of seconds > 0."""
        text = environ.get(BUDGET_ENV)
        if text is None:
            return cls()
        try:
            budget = float(text)
        except ValueError:
            budget = float("nan")
        if not 0 < budget <= 3600:
            raise ConfigError(f"{BUDGET_ENV}={text!r} must be a number of seconds, > 0 and ≤ 3600")
        return cls(budget_s=budget)


def producer_config(policy: CopyPolicy, largest_fetch_bytes: int) -> dict:
    """The dead-letter producer's settings (see the module doc), for a consumer
    that accepts fetch responses of up to ``largest_fetch_bytes``."""
    return {
        "acks": "all",
        "enable_idempotence": False,
        "retries": 0,
        "linger_ms": 0,  # a batch's copies are awaited at once: lingering would only add to the wait
        "max_request_size": largest_fetch_bytes + HEADROOM_BYTES,
        "max_block_ms": policy.max_block_ms,
        # A record not acknowledged within about the budget is expired by the
        # client too, rather than delivered long after it was counted as given
        # up (the client's own default: 2 minutes).
        "request_timeout_ms": policy.request_timeout_ms,
        "delivery_timeout_ms": policy.request_timeout_ms + 5,  # ≥ linger + request timeout, as the client requires
    }


def headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Why and where from: the value stays the original bytes."""
    src = letter.source
    return [
        ("reason", letter.reason.encode()),
        ("detail", letter.detail.encode()[:DETAIL_MAX_BYTES]),
        ("source.topic", (src.topic or "").encode()),
        ("source.partition", str(src.partition).encode()),
        ("source.offset", str(src.offset).encode()),
    ]


_REASONS = {
    "MessageSizeTooLargeError": "too_large",
    "RecordListTooLargeError": "too_large",
    "KafkaTimeoutError": "timeout",
    "RequestTimedOutError": "timeout",
    "UnknownTopicOrPartitionError": "topic_missing",
    "InvalidTopicError": "invalid_topic",
    "ValueError": "invalid_topic",  # the client refuses an illegal topic name in send()
    "TopicAuthorizationFailedError": "not_authorized",
    "InvalidRecordError": "refused",
    "PolicyViolationError": "refused",
    "CorruptRecordError": "refused",
    "KafkaConnectionError": "broker_unavailable",
    "NodeNotReadyError": "broker_unavailable",
    "NoBrokersAvailable": "broker_unavailable",
    "NetworkExceptionError": "broker_unavailable",
    "NotLeaderForPartitionError": "broker_unavailable",
    "LeaderNotAvailableError": "broker_unavailable",
    "NotEnoughReplicasError": "broker_unavailable",
    "NotEnoughReplicasAfterAppendError": "broker_unavailable",
}


def failure_reason(exc: BaseException) -> str:
    """The metric label of a failed copy: a few well-known causes by name, any
    other by its exception class in snake case (a bounded set: the client's)."""
    name = type(exc).__name__
    if name in _REASONS:
        return _REASONS[name]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Error")).lower() or "error"


def retriable(exc: BaseException) -> bool:
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


def describe(exc: BaseException) -> str:
    text = str(exc)
    text = text if len(text) <= 200 else text[:200] + "…"
    return f"{type(exc).__name__}: {text}" if text and type(exc).__name__ not in text else text or type(exc).__name__


@dataclass(frozen=True)
class Failure:
    """A copy given up on: the letter, the metric reason, and the client's error."""

    letter: DeadLetter
    reason: str
    error: str
    cooling: bool = False  # not tried: its topic is in a cool-down (see DeadLetterTopic)


@dataclass
class CopyReport:
    sent: int = 0
    failures: list[Failure] = field(default_factory=list)
    attempts: int = 0  # rounds of sending (1 = no retry)
    seconds: float = 0.0

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


class DeadLetterSink(Protocol):
    def write(self, letters: Sequence[DeadLetter]) -> CopyReport:
        """Copy the letters within the policy's budget; never raises."""


class DeadLetterTopic:
    """Copies dead letters to their dead-letter topic with the consumer's
    dead-letter producer (configured by ``producer_config``): ``routes`` maps a
    source topic to its dead-letter topic; a letter from any other source goes
    to ``topic``. One budget covers all the letters of a write, whichever
    topics they go to."""

    def __init__(
        self,
        producer: KafkaProducer,
        topic: str,
        policy: CopyPolicy = CopyPolicy(),
        *,
        routes: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.routes = dict(routes or {})
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.cooling: dict[str, _CoolDown] = {}  # topic → its cool-down

    def topics(self) -> list[str]:
        return sorted({self.topic, *self.routes.values()})

    def expect(self, existing: set[str]) -> None:
        """At start: a warning for each dead-letter topic that does not exist
        (its first batch of copies finds out, then its cool-down begins)."""
        for topic in self.topics():
            if topic not in existing:
                log.warning("dead-letter topic %s does not exist (consume does not create topics): its copies will be "
                            "counted as failed; the dead letters themselves are recorded in the ledger", topic)

    def topic_for(self, letter: DeadLetter) -> str:
        return self.routes.get(letter.source.topic, self.topic)

    def write(self, letters: Sequence[DeadLetter]) -> CopyReport:
        report = CopyReport()
        if not letters:
            return report
        started = self.clock()
        deadline = started + self.policy.budget_s
        pending: list[DeadLetter] = []
        for letter in letters:
            cooling = self._cooling(self.topic_for(letter), started)
            if cooling is None:
                pending.append(letter)
            else:
                cooling.skipped += 1
                report.failures.append(Failure(letter, cooling.reason, f"not tried: {cooling.why}", cooling=True))
        if not pending:
            report.seconds = self.clock() - started
            return report
        tried = pending
        pause = self.policy.first_pause_s
        while True:
            report.attempts += 1
            again = self._attempt(pending, deadline, report)
            if not again:
                break
            if self.clock() + pause >= deadline:
                report.failures += [Failure(letter, failure_reason(exc), describe(exc)) for letter, exc in again]
                break
            self.sleep(pause)
            pause = min(pause * 2, self.policy.max_pause_s)
            pending = [letter for letter, _ in again]
        report.seconds = self.clock() - started
        self._log(report)
        self._cool_failed_topics(tried, report)
        return report

    def _cooling(self, topic: str, now: float) -> _CoolDown | None:
        cooling = self.cooling.get(topic)
        if cooling is None:
            return None
        if now < cooling.until:
            return cooling
        del self.cooling[topic]
        log.warning("dead-letter topic %s: cool-down over, %d cop%s skipped in it (counted as failed: %s); trying again",
                    topic, cooling.skipped, "y" if cooling.skipped == 1 else "ies", cooling.reason)
        return None

    def _cool_failed_topics(self, tried: list[DeadLetter], report: CopyReport) -> None:
        """A topic none of whose copies was written, for reasons of the topic's, cools down."""
        failed: dict[str, list[Failure]] = {}
        for failure in report.failures:
            if not failure.cooling:
                failed.setdefault(self.topic_for(failure.letter), []).append(failure)
        for topic, failures in failed.items():
            if len(failures) != sum(1 for letter in tried if self.topic_for(letter) == topic):
                continue  # some copies went through: the topic takes them
            reason = next((f for f in failures if f.reason not in LETTER_REASONS), None)
            if reason is None:
                continue
            if reason.reason in BROKER_REASONS and self._known(topic):
                continue  # the broker, not the topic: the consumer's own polls wait for it anyway
            self._cool(topic, reason.reason, reason.error)

    def _known(self, topic: str) -> bool:
        """Does the producer's metadata know the topic's partitions?"""
        metadata = getattr(self.producer, "_metadata", None)
        try:
            return bool(metadata is not None and metadata.partitions_for_topic(topic))
        except Exception:  # noqa: BLE001 - unknown is not known
            return False

    def _cool(self, topic: str, reason: str, why: str) -> None:
        self.cooling[topic] = _CoolDown(self.clock() + COOL_DOWN_S, reason, why)
        log.warning("dead-letter topic %s unavailable (%s: %s): its copies are counted as failed without trying for "
                    "%.0fs; the dead letters themselves are recorded in the ledger", topic, reason, why, COOL_DOWN_S)

    def _attempt(self, letters: list[DeadLetter], deadline: float,
                 report: CopyReport) -> list[tuple[DeadLetter, BaseException]]:
        """Send each letter once and await the acknowledgements until the
        deadline; record successes and permanent failures in ``report``; return
        the letters worth another try, with their error."""
        again: list[tuple[DeadLetter, BaseException]] = []
        in_flight = []
        stalled: dict[str, BaseException] = {}  # topic → the retriable error its send raised this round
        for letter in letters:
            topic = self.topic_for(letter)
            if topic in stalled:
                # Metadata or connection trouble concerns the topic, not the
                # letter: the rest of this round would wait the same way.
                again.append((letter, stalled[topic]))
                continue
            try:
                in_flight.append((letter, self.producer.send(topic, value=letter.raw, headers=headers(letter))))
            except Exception as exc:  # noqa: BLE001 - whatever the client raises is a failed copy, never a crash
                if retriable(exc):
                    stalled[topic] = exc
                    again.append((letter, exc))
                    continue
                report.failures.append(Failure(letter, failure_reason(exc), describe(exc)))
        for letter, future in in_flight:
            try:
                future.get(timeout=max(0.0, deadline - self.clock()))
            except Exception as exc:  # noqa: BLE001 - as above
                if retriable(exc):
                    again.append((letter, exc))
                else:
                    report.failures.append(Failure(letter, failure_reason(exc), describe(exc)))
            else:
                report.sent += 1
        return again

    def _log(self, report: CopyReport) -> None:
        tried = [f for f in report.failures if not f.cooling]
        for failure in tried[:LOGGED_PER_BATCH]:
            src = failure.letter.source
            log.warning("dead-letter copy to %s given up (%s) after %d attempt(s) in %.2fs: topic %s partition %s offset %s "
                        "(%s): %s", self.topic_for(failure.letter), failure.reason, report.attempts, report.seconds, src.topic, src.partition,
                        src.offset, failure.letter.reason, failure.error)
        by_topic: dict[str, list[Failure]] = {}
        for failure in tried[LOGGED_PER_BATCH:]:
            by_topic.setdefault(self.topic_for(failure.letter), []).append(failure)
        for topic, rest in by_topic.items():
            sources = ", ".join(f.letter.source.text() for f in rest[:50]) + (" …" if len(rest) > 50 else "")
            log.warning("dead-letter copy to %s given up for %d more: %s", topic, len(rest), sources)


@dataclass
class _CoolDown:
    until: float  # clock time
    reason: str  # the metric reason of the copies counted as failed meanwhile
    why: str
    skipped: int = 0


class CopiedShares:
    """Which shares' dead letters this process has copied already: every task
    applies every share, and a bad share's copy is sent once per process.

    Per shares partition, the next offset not yet copied; a task's batch of
    shares is a contiguous range from its own position, so a letter below the
    mark was copied (or given up on) by an earlier batch of some task."""

    def __init__(self, shares_topic: str) -> None:
        self.shares_topic = shares_topic
        self.next_offset: dict[int, int] = {}

    def fresh(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        return [letter for letter in letters
                if letter.source.topic != self.shares_topic
                or letter.source.offset >= self.next_offset.get(letter.source.partition, 0)]

    def copied(self, advances: Mapping[int, int]) -> None:
        """A batch's copies are done: ``advances`` is its next offset per shares partition."""
        for partition, next_offset in advances.items():
            if next_offset > self.next_offset.get(partition, 0):
                self.next_offset[partition] = next_offset
