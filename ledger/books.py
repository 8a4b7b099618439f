"""The books: every journal of one store, and the commands that span them.

Journals hold disjoint sets of buyers (``main`` for file ingest, one per Kafka
partition of the events topic), so promoter balances are a fold over all of
them, never a write-side aggregate. ``settle`` runs in each journal (each
freezes its own orders); payouts and adjustments go to the ``treasury``
journal, where optimistic concurrency on its version guarantees that two
concurrent payouts never pay the same balance twice.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

from ledger import log
from ledger.app import Ledger
from ledger.arguments import AsOf, validate_adjustment, validate_command_text
from ledger.config import Rules
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.engine.holds import ORDER, PROMOTER
from ledger.errors import CommandError, NotFoundError
from ledger.records import Adjusted, Held, PaidOut, Record, Rejected, Released, Settled, decode_segment, fold_records
from ledger.store import TREASURY, ConcurrentWriteError, JournalStore, Row, Store

Also = Callable[[int, list[Record]], Sequence[Row]]  # (treasury position, records) → rows committed with them
MAX_PAYOUT_ATTEMPTS = 20


class Books:
    def __init__(self, store: Store | str, rules: Rules | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
        """``rules``, when given, are put in force in every journal written to."""
        self.store = store if isinstance(store, Store) else Store(store)
        self.rules = rules
        self.limits = limits

    def journals(self) -> list[str]:
        return self.store.journals()

    def ledger(self, journal: str = "main") -> Ledger:
        """Open one journal for writing, with the given rules put in force."""
        ledger = Ledger(JournalStore(self.store, journal), limits=self.limits)
        if self.rules is not None:
            ledger.adopt_rules(self.rules)
        return ledger

    # ---------------------------------------------------------------- reading
    def records(self, *, until_position: int | None = None, recorded_until_us: int | None = None) -> Iterator[tuple[str, int, Record]]:
        """Every record of every journal in commit order: (journal, position, record).

        Time travel: stop after the segment at store position ``until_position``
        (the commit sequence `audit replay` prints as "store position"), or at the last
        segment recorded at or before ``recorded_until_us``.
        """
        return log.records(self.store, until_position=until_position, recorded_until_us=recorded_until_us)  # type: ignore[return-value]

    def record_at(self, journal: str, position: int) -> Record | None:
        """The record at ``position`` of ``journal`` (a binary search over its segments)."""
        store = JournalStore(self.store, journal)
        newest = store.last()
        lo, hi = 1, newest[0].version if newest else 0
        while lo <= hi:
            mid = (lo + hi) // 2
            segment = decode_segment(store.segment(mid).state)
            if position < segment.first:
                hi = mid - 1
            elif position >= segment.first + len(segment.records):
                lo = mid + 1
            else:
                return segment.records[position - segment.first]
        return None

    def balances(self, **as_of) -> dict[tuple[str, str], list[int]]:
        """(promoter, currency) → [pending, payable, paid], over every journal."""
        return fold_records(record for _, _, record in self.records(**as_of))

    # --------------------------------------------------------------- commands
    def settle(self, as_of: str) -> list[Settled]:
        """Settle every journal that holds orders (SPEC §7); the records written."""
        return list(self.settle_each(as_of))

    def settle_each(self, as_of: str) -> Iterator[Settled]:
        """``settle``, each record yielded once written (a bulk settle's
        records are not all held at once)."""
        when = AsOf.parse(as_of)
        for name in self.journals():
            if name != TREASURY:
                yield from self.ledger(name).settle_all(when)

    def payout(self, as_of: str, also: Also | None = None) -> PaidOut:
        """SPEC §7's payout from the balances folded from every journal (see ``pay``)."""
        return self.pay(as_of, also=also)[1]

    def pay(self, as_of: str, payables: Callable[[], tuple[int, dict[tuple[str, str], int]]] | None = None,
            also: Also | None = None) -> tuple[int, PaidOut]:
        """Pay every balance ≥ min_payout, exactly once even under concurrency:
        the payout is computed from every journal's balances (``payables()``:
        the store position they stand at and the payable per promoter and
        currency; by default a fold of the log) and appended at the treasury
        version fixed before they were read; a concurrent payout forces a retry.
        ``also(position, records)`` gives rows committed with it (an
        idempotency key's record: the payout and its key commit together).
        Returns the payout's treasury position and record."""
        when = AsOf.parse(as_of)
        for _ in range(MAX_PAYOUT_ATTEMPTS):
            treasury = self.ledger(TREASURY)
            treasury.ensure_rules()  # may write: do it before fixing the version
            version = treasury.version
            position, amounts = (payables or self._folded_payables)()
            try:
                return treasury.record_payout(when, amounts, expected_version=version, balances_at=position, also=also)
            except ConcurrentWriteError:
                if also is not None and self.store.exists(also(0, [])):
                    raise  # the key was recorded by another request: its caller replays the first response
                continue
        raise ConcurrentWriteError("payout: the treasury kept changing; try again")

    def _folded_payables(self) -> tuple[int, dict[tuple[str, str], int]]:
        position = self.store.recorder.max_notification_id() or 0
        return position, {key: row[1] for key, row in self.balances(until_position=position).items()}

    def adjust(self, promoter_id: str, currency: str, amount_minor: int, reason: str, actor: str,
               also: Also | None = None) -> Adjusted:
        """A manual adjustment in the treasury journal; ``also`` as for ``pay``."""
        return self.adjust_at(promoter_id, currency, amount_minor, reason, actor, also)[1]

    def adjust_at(self, promoter_id: str, currency: str, amount_minor: int, reason: str, actor: str,
                  also: Also | None = None) -> tuple[int, Adjusted]:
        """``adjust``, with the adjustment's treasury position."""
        validate_adjustment(promoter_id, currency, amount_minor, reason)
        return self.ledger(TREASURY).record_adjustment(promoter_id, currency, amount_minor, reason, actor, also)

    # ------------------------------------------------- holds (SPEC §16)
    def order_ledger(self, order_id: str) -> Ledger:
        """The journal that knows ``order_id`` (journals hold disjoint buyers:
        an order's commands go where its state is); NotFoundError if none."""
        for name in self.journals():
            if name != TREASURY:
                ledger = Ledger(JournalStore(self.store, name), limits=self.limits)
                if ledger.engine.orders.get(order_id) is not None:
                    if self.rules is not None:
                        ledger.adopt_rules(self.rules)  # only where the command is recorded
                    return ledger
        raise NotFoundError(f"order {order_id!r} is not known")

    def _target_ledger(self, target: str, target_id: str) -> Ledger:
        if target == ORDER:
            return self.order_ledger(target_id)
        if target == PROMOTER:
            return self.ledger(TREASURY)  # a promoter hold concerns payouts
        raise CommandError(f"kind must be order or promoter, not {target!r}")

    def hold(self, target: str, target_id: str, reason: str, actor: str, also: Also | None = None) -> tuple[str, int, Record]:
        """``hold order|promoter``: (journal, position, record)."""
        validate_command_text(target_id, reason, actor)
        ledger = self._target_ledger(target, target_id)
        return (ledger.store.name, *ledger.record_command(Held(target, target_id, actor, reason), also))

    def release(self, target: str, target_id: str, reason: str, actor: str, also: Also | None = None) -> tuple[str, int, Record]:
        """``release order|promoter``: (journal, position, record)."""
        validate_command_text(target_id, reason, actor)
        ledger = self._target_ledger(target, target_id)
        return (ledger.store.name, *ledger.record_command(Released(target, target_id, actor, reason), also))

    def reject(self, order_id: str, reason: str, actor: str, also: Also | None = None) -> tuple[str, int, Record]:
        """``reject order``: (journal, position, record with its reversals)."""
        validate_command_text(order_id, reason, actor)
        ledger = self.order_ledger(order_id)
        return (ledger.store.name, *ledger.record_command(Rejected(order_id, actor, reason, []), also))

    def holds_in_force(self) -> list[dict]:
        """The holds in force (SPEC §16 `holds`), review holds included: one
        row per hold, orders in each journal's settlement order, then promoters."""
        rows: list[dict] = []
        names = self.journals()
        for name in names:
            if name == TREASURY:
                continue
            ledger = Ledger(JournalStore(self.store, name), limits=self.limits)
            holds = ledger.engine.holds
            for order_id in holds.held_order_ids():
                flags = holds.flags.get(order_id)
                for note in flags.notes_in_force() if flags is not None else []:
                    rows.append({"kind": ORDER if note.action == "hold" else "review", "id": order_id,
                                 "reasons": note.reason.split(",") if note.action == "review" else [note.reason],
                                 "actor": note.actor, "journal": name, "position": note.position})
        if TREASURY in names:
            treasury = Ledger(JournalStore(self.store, TREASURY), limits=self.limits)
            for promoter_id, notes in sorted(treasury.engine.holds.held_promoters().items()):
                for note in notes:
                    rows.append({"kind": PROMOTER, "id": promoter_id, "reasons": [note.reason], "actor": note.actor,
                                 "journal": TREASURY, "position": note.position})
        return rows
