package health.carry.tests

import health.carry.ffi.Profile
import health.carry.ffi.TimelineQuery
import java.nio.file.Path
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/** Cancelling coroutines, and several coroutines on one vault. */
class ConcurrencyTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `cancelling an import mid-way keeps none of the file`(): Unit = runBlocking {
        val big = dir.resolve("big.ndjson")
        val lines = Fixtures.writeBigNdjson(big, copies = 30)
        val folder = dir.resolve("p").toString()
        val keys = TestKeyStore()
        val events = RecordingEvents()

        val profile = Profile.create(folder, "Big", keys, events)
        val outcome = Outcome()
        val job = launch(Dispatchers.Default) {
            try {
                profile.importFile(big.toString())
                outcome.finished = true
            } catch (e: CancellationException) {
                outcome.cancelled = true
                throw e
            }
        }
        // Cancel once the import is demonstrably under way.
        val first = withTimeout(30_000) { events.first.await() }
        job.cancelAndJoin()
        profile.close()
        val cancelledEarly = first.resources < lines.toULong() / 2u
        assertTrue(outcome.cancelled || outcome.finished)

        Profile.open(folder, keys, null).use { p ->
            val seen = p.stats().resources
            assertTrue(seen == 0uL || seen == lines.toULong(), "half an import is visible: $seen of $lines")
            // A write queues behind the cancelled import's transaction, so once it is
            // done that transaction has ended one way or the other.
            p.importFile(Fixtures.clemente.path)
            val after = p.stats().resources - Fixtures.CLEMENTE_RESOURCES
            println(
                "cancel: first progress at ${first.resources}/$lines, cancelled=${outcome.cancelled}, " +
                    "finished=${outcome.finished}, kept $after",
            )
            if (cancelledEarly && outcome.cancelled) {
                assertEquals(0uL, after, "cancelled after ${first.resources} of $lines resources")
            } else {
                assertTrue(after == 0uL || after == lines.toULong(), "partial import: $after of $lines")
            }
        }
    }

    @Test
    fun `reads run alongside an import on the same profile`(): Unit = runBlocking {
        val big = dir.resolve("five.ndjson")
        val lines = Fixtures.writeBigNdjson(big, copies = 5).toULong()
        Profile.create(dir.resolve("p").toString(), "Shared", TestKeyStore(), null).use { p ->
            p.importFile(Fixtures.clemente.path)
            val base = Fixtures.CLEMENTE_RESOURCES

            val importing = async(Dispatchers.Default) { p.importFile(big.toString()) }
            val reads = AtomicInteger()
            val reader = async(Dispatchers.Default) {
                while (!importing.isCompleted) {
                    val page = p.timeline(TimelineQuery(limit = 20u))
                    assertTrue(page.items.isNotEmpty())
                    p.search("encounter", 5u)
                    val n = p.stats().resources
                    assertTrue(n == base || n == base + lines, "a read saw a partial import: $n")
                    reads.incrementAndGet()
                    delay(5)
                }
            }
            val report = withTimeout(60_000) { importing.await() }
            withTimeout(10_000) { reader.await() }

            assertEquals(lines, report.imported)
            println("concurrent: ${reads.get()} read rounds while $lines resources were imported")
            // Reads do not queue behind the writer: several rounds fit in one import.
            assertTrue(reads.get() >= 2, "only ${reads.get()} read rounds ran during the import")
            assertEquals(base + lines, p.stats().resources)
        }
    }

    @Test
    fun `many coroutines read one vault at once`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Readers", TestKeyStore(), null).use { p ->
            p.importFile(Fixtures.alfreda.path)
            val expected = p.timeline(TimelineQuery(limit = 500u)).items
            val results = (1..16).map { i ->
                async(Dispatchers.Default) {
                    if (i % 2 == 0) p.timeline(TimelineQuery(limit = 500u)).items
                    else p.search("glucose", null).also { assertTrue(it.isNotEmpty()) }.let { expected }
                }
            }.map { it.await() }
            results.forEach { assertEquals(expected, it) }
        }
    }

    private class Outcome {
        @Volatile var finished = false
        @Volatile var cancelled = false
    }
}
