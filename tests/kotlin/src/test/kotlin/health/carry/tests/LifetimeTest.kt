package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.Profile
import health.carry.ffi.TimelineQuery
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** `close()`/`use {}` and `lock()`/`unlock()` as an app meets them. */
class LifetimeTest {
    @TempDir
    lateinit var dir: Path

    private val folder get() = dir.resolve("p").toString()

    @Test
    fun `a closed profile throws IllegalStateException instead of crashing`(): Unit = runBlocking {
        val p = Profile.create(folder, "Ada", TestKeyStore(), null)
        p.use { assertEquals("Ada", it.info().name) }

        val e = assertThrowsSuspend<IllegalStateException> { p.info() }
        assertTrue(e.message!!.contains("destroyed"), e.message)
        assertThrowsSuspend<IllegalStateException> { p.timeline(TimelineQuery()) }
        assertThrows<IllegalStateException> { p.isLocked() }
        assertThrows<IllegalStateException> { p.lock() }
        p.close() // a second close is harmless

        // The vault itself is fine.
        Profile.open(folder, TestKeyStore(), null).use { assertEquals("Ada", it.info().name) }
    }

    @Test
    fun `pause releases the files and the next call reopens them`(): Unit = runBlocking {
        Profile.create(folder, "Ada", TestKeyStore(), null).use { p ->
            p.importFile(Fixtures.clemente.path)
            p.pause()
            assertFalse(p.isLocked())
            // Every connection closed: SQLite checkpointed and removed the WAL.
            assertFalse(dir.resolve("p").resolve("vault.db-wal").toFile().exists())
            assertEquals(Fixtures.CLEMENTE_RESOURCES, p.stats().resources)
            p.pause()
            p.resume()
            assertEquals("Ada", p.info().name)
        }
    }

    @Test
    fun `lock makes calls fail with Locked until unlock`(): Unit = runBlocking {
        val keys = TestKeyStore()
        Profile.create(folder, "Ada", keys, null).use { p ->
            p.importFile(Fixtures.clemente.path)
            p.lock()
            assertTrue(p.isLocked())
            for (call in listOf<suspend () -> Unit>(
                { p.info() },
                { p.stats() },
                { p.timeline(TimelineQuery()) },
                { p.search("x", null) },
                { p.importFile(Fixtures.clemente.path) },
            )) {
                assertReasonful(assertThrowsSuspend<CarryException.Locked> { call() })
            }

            p.unlock(keys)
            assertFalse(p.isLocked())
            assertEquals(Fixtures.CLEMENTE_RESOURCES, p.stats().resources)
        }
    }

    @Test
    fun `unlocking with another key store is WrongKey and stays locked`(): Unit = runBlocking {
        val keys = TestKeyStore(seed = 1)
        Profile.create(folder, "Ada", keys, null).use { p ->
            p.lock()
            assertThrowsSuspend<CarryException.WrongKey> { p.unlock(TestKeyStore(seed = 9)) }
            assertTrue(p.isLocked())
            assertThrowsSuspend<CarryException.Locked> { p.info() }
            p.unlock(keys)
            p.unlock(keys) // unlocking an unlocked profile is a no-op
            assertEquals("Ada", p.info().name)
        }
    }

    @Test
    fun `locking twice and closing a locked profile are fine`(): Unit = runBlocking {
        val p = Profile.create(folder, "Ada", TestKeyStore(), null)
        p.lock()
        p.lock()
        p.close()
        assertThrows<IllegalStateException> { p.isLocked() }
    }
}
