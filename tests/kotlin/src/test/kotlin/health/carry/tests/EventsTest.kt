package health.carry.tests

import health.carry.ffi.Profile
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/** Progress callbacks come from a Rust thread, and all of them before the call returns. */
class EventsTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `import progress arrives on a Rust thread, not the caller's`(): Unit = runBlocking {
        val events = RecordingEvents()
        val caller = Thread.currentThread()
        Profile.create(dir.resolve("p").toString(), "Jene", TestKeyStore(), events).use { p ->
            val report = p.importFile(Fixtures.jene.path)
            assertEquals(Fixtures.JENE_RESOURCES, report.imported)

            // Every 256 resources and once at the end: 589 gives at least three.
            assertTrue(events.calls.get() >= 3, "progress calls: ${events.calls.get()}")
            assertFalse(caller.id in events.threadIds, "called on the test thread ${caller.name}")
            assertFalse(caller.name in events.threads)
            val last = events.last!!
            assertEquals(Fixtures.JENE_RESOURCES, last.resources, "the last call reports the end")
            assertEquals(last.bytesTotal, last.bytesRead)
            assertEquals(Fixtures.jene.length().toULong(), last.bytesTotal)
        }
    }

    @Test
    fun `a profile opened without events imports silently`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Jene", TestKeyStore(), null).use { p ->
            assertEquals(Fixtures.JENE_RESOURCES, p.importFile(Fixtures.jene.path).imported)
        }
    }
}
