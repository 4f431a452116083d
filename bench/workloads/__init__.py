"""The workloads, one module per family.  Each gives cases(setup), the
Cases (runner.py) to measure, and describe(quick), its paragraph in the
report.  WORKLOADS maps the names of --only to them, in the order they run
and are described."""

from workloads import async_reads, asyncfile, bulkfiles, filecopy, http, nop, randread, tcp_echo

WORKLOADS = {
    "nop": ("NOP round trips", nop.cases, nop.describe),
    "cached": ("page-cache reads", randread.cached_cases, randread.describe_cached),
    "async": ("page-cache reads under asyncio", async_reads.cases, async_reads.describe),
    "direct": ("O_DIRECT reads", randread.direct_cases, randread.describe_direct),
    "copy": ("file copy", filecopy.cases, filecopy.describe),
    "echo": ("TCP echo", tcp_echo.cases, tcp_echo.describe),
    "http": ("HTTP under wrk", http.cases, http.describe),
    "bulk": ("many files", bulkfiles.cases, bulkfiles.describe),
    "afile": ("the async file object", asyncfile.cases, asyncfile.describe),
}
