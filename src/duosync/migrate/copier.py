"""Full migration: copy key-range chunks with parallel readers and writers.

Pipeline: ``read_concurrency`` reader threads each take a chunk, read its rows from
the source into memory (a ``SnapshotReader`` each), and put them on a bounded
queue; ``write_concurrency`` writer threads (a ``ChunkSink`` each) take them off and
write each chunk in one target transaction; the calling thread records finished
chunks in the metadata store. The bounded queue is the back-pressure: readers wait
when writers fall behind. The readers render each chunk in the form the target's
sink takes (``core.copying.ChunkForm``); Python forwards the text unchanged.

Resume without loss or duplicates: a chunk is recorded done only after its target
transaction committed. A chunk that is not recorded done is written again from
scratch; in ``stop`` mode its key range is first emptied in the same transaction
(the target table was verified empty before the first write, so only our own rows
can be there), in ``ignore`` mode rows whose key exists are kept and compared.

A row the target refuses (a value out of its range, say) fails its whole chunk; the
chunk is then replayed row by row in a transaction that is rolled back, only to name
the first refused row's key in the error. A sink that cannot take a chunk in its
form without changing a value (``FormRefused``: a load that raised warnings) gets
it again in the form it names.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from duosync.config import Endpoint
from duosync.core.copying import Chunk, ChunkData, ChunkForm, ChunkResult, CopyJob, FormRefused
from duosync.core.interfaces import ChunkSink, SnapshotReader
from duosync.endpoints import open_chunk_sink, open_snapshot_reader
from duosync.errors import DataError, DuosyncError, RetriableError
from duosync.migrate.ratelimit import RateLimiter

_WRITE_ATTEMPTS = 5
_NUMBER = re.compile(r"-?\d+(\.\d+)?")

ChunkDone = Callable[[ChunkResult], None]


def _show(value: Any) -> str:
    """A key value as a user would type it: numbers bare, text quoted, bytes hex."""
    if isinstance(value, bytes):
        raw: bytes = value
        try:
            value = raw.decode()
        except UnicodeDecodeError:
            return "0x" + raw.hex()
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        return repr(value)
    return str(value)


def _plan_forms(
    jobs: Sequence[CopyJob], source: Endpoint, target: Endpoint
) -> tuple[dict[str, ChunkForm], int]:
    """Each job's form (as the target's sink takes it) and the piece limit both
    servers take; the copy's first connections."""
    reader = open_snapshot_reader(source)
    try:
        sink = open_chunk_sink(target)
        try:
            limit = min(reader.max_piece(), sink.max_piece())
            return {job.name: sink.form(job) for job in jobs}, limit
        finally:
            sink.close()
    finally:
        reader.close()


def _read_again(
    source: Endpoint, job: CopyJob, chunk: Chunk, form: ChunkForm, limit: int
) -> ChunkData:
    """The chunk read again in *form* (the sink refused the first one's form)."""
    reader = open_snapshot_reader(source)
    try:
        return reader.read(job, chunk, form, limit)
    finally:
        reader.close()


def _name_refused_row(
    error: DataError, source: Endpoint, sink: ChunkSink, job: CopyJob, chunk: Chunk
) -> DataError:
    """The chunk's error, naming the first row the target refuses (if one is found)."""
    try:
        reader: SnapshotReader = open_snapshot_reader(source)
    except DuosyncError:
        return error
    try:
        rows = reader.read_keyed(job, chunk, sink.replay_form())
        found = sink.first_refused(job, chunk, rows)
    except DuosyncError:
        return error
    finally:
        reader.close()
    if found is None:
        return error
    row, reason = found
    if not job.key:
        key = "(no key: a full-scan table)"
    else:
        key = f"({', '.join(job.key)}) = ({', '.join(_show(v) for v in row.key)})"
    return DataError(
        f"the target refuses source row {key} of {job.name}: {reason}",
        endpoint=error.endpoint,
        table=job.target.qualified,
        hint="change or filter out that row on the source, or widen the target column",
    )


def run_copy(
    jobs: Sequence[CopyJob],
    source: Endpoint,
    target: Endpoint,
    *,
    read_concurrency: int,
    write_concurrency: int,
    limiter: RateLimiter,
    on_done: ChunkDone,
    task: str,
    cancel: threading.Event | None = None,
) -> None:
    """Copy every pending chunk of *jobs*; call *on_done* (in this thread) per chunk.
    Setting *cancel* (a pause, a shutdown) stops it within about a second: chunks
    under way are left unrecorded, so a resume copies them again (their range is
    emptied first), and nothing is lost or doubled."""
    work: queue.Queue[tuple[CopyJob, Chunk] | None] = queue.Queue()
    for job in jobs:
        for chunk in job.chunks:
            work.put((job, chunk))
    total = work.qsize()
    if total == 0:
        return
    readers = max(1, min(read_concurrency, total))
    writers = max(1, min(write_concurrency, total))
    for _ in range(readers):
        work.put(None)
    forms, limit = _plan_forms(jobs, source, target)
    # None tells a writer to leave at once (it would otherwise notice *stop* only at
    # its next half-second poll, which every run paid at its end).
    data: queue.Queue[tuple[CopyJob, Chunk, ChunkData] | None] = queue.Queue(
        maxsize=max(2, writers * 2)
    )
    done: queue.Queue[ChunkResult | BaseException] = queue.Queue()
    stop = threading.Event()

    def reader() -> None:
        try:
            snapshot = open_snapshot_reader(source)
        except BaseException as exc:
            done.put(exc)
            return
        try:
            while not stop.is_set():
                item = work.get()
                if item is None:
                    break
                job, chunk = item
                rows = snapshot.read(job, chunk, forms[job.name], limit)
                while not stop.is_set():
                    try:
                        data.put((job, chunk, rows), timeout=0.5)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:
            done.put(exc)
        finally:
            snapshot.close()

    def writer() -> None:
        try:
            sink = open_chunk_sink(target)
        except BaseException as exc:
            done.put(exc)
            return
        try:
            while not stop.is_set():
                try:
                    item = data.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is None:
                    break
                job, chunk, rows = item
                limiter.acquire(rows.rows, rows.nbytes)
                for attempt in range(1, _WRITE_ATTEMPTS + 1):
                    try:
                        done.put(sink.write(job, chunk, rows))
                        break
                    except FormRefused as refused:
                        # rolled back whole: the other form says what the target refuses
                        rows = _read_again(source, job, chunk, refused.instead, limit)
                    except DataError as error:
                        raise _name_refused_row(error, source, sink, job, chunk) from None
                    except RetriableError:
                        # A deadlock or lock wait rolled the chunk back whole: retry it.
                        if attempt == _WRITE_ATTEMPTS:
                            raise
                        time.sleep(0.05 * 2**attempt)
        except BaseException as exc:
            done.put(exc)
        finally:
            sink.close()

    threads = [
        threading.Thread(target=reader, name=f"reader-{i}", daemon=True) for i in range(readers)
    ]
    wthreads = [
        threading.Thread(target=writer, name=f"writer-{i}", daemon=True) for i in range(writers)
    ]
    for t in threads + wthreads:
        t.start()
    failure: BaseException | None = None
    finished = 0
    try:
        while finished < total and not (cancel is not None and cancel.is_set()):
            try:
                got = done.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(got, BaseException):
                failure = got
                break
            on_done(got)
            finished += 1
    except BaseException as exc:  # Ctrl-C: stop cleanly at a chunk boundary
        failure = exc
    finally:
        stop.set()  # readers and writers poll it and leave within half a second
        for _ in wthreads:
            # A full queue means writers are busy: they see *stop* after that item.
            with contextlib.suppress(queue.Full):
                data.put_nowait(None)
        for t in threads + wthreads:
            t.join(timeout=30)
    if failure is not None:
        if isinstance(failure, DuosyncError):
            if failure.task is None:
                failure.task = task
            raise failure
        raise failure
