package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.KeyStore
import health.carry.ffi.Profile
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/** Opening vaults with key stores written in Kotlin. */
class KeyStoreTest {
    @TempDir
    lateinit var dir: Path

    private val folder get() = dir.resolve("profile").toString()

    @Test
    fun `a Kotlin key store wraps on create and unwraps on open`(): Unit = runBlocking {
        val creating = TestKeyStore(seed = 1)
        Profile.create(folder, "Ada", creating, null).use { p ->
            assertEquals("Ada", p.info().name)
            assertTrue(p.info().createdAt > 0)
        }
        assertEquals(1, creating.wraps.get(), "create wraps the new vault key once")

        // A fresh instance with the same key, as after an app restart.
        val opening = TestKeyStore(seed = 1)
        Profile.open(folder, opening, null).use { p ->
            assertEquals("Ada", p.info().name)
            assertEquals(false, p.isLocked())
        }
        assertTrue(opening.unwraps.get() >= 1, "open unwraps the vault key")
        assertEquals(0, opening.wraps.get(), "open does not rewrap")
    }

    @Test
    fun `another key store gives WrongKey and leaves the vault as it was`(): Unit = runBlocking {
        val right = TestKeyStore(seed = 1)
        Profile.create(folder, "Ada", right, null).use { it.importFile(Fixtures.clemente.path) }

        val e = assertThrowsSuspend<CarryException.WrongKey> {
            Profile.open(folder, TestKeyStore(seed = 2), null).close()
        }
        assertReasonful(e)

        Profile.open(folder, right, null).use { p ->
            assertEquals(Fixtures.CLEMENTE_RESOURCES, p.stats().resources)
        }
    }

    @Test
    fun `a key store that fails unexpectedly gives Internal, not a crash`(): Unit = runBlocking {
        Profile.create(folder, "Ada", TestKeyStore(), null).close()
        val broken = object : KeyStore {
            override fun wrap(key: ByteArray): ByteArray = error("keystore unavailable")
            override fun unwrap(wrapped: ByteArray): ByteArray = error("keystore unavailable")
        }
        val e = assertThrowsSuspend<CarryException.Internal> { Profile.open(folder, broken, null).close() }
        assertReasonful(e)
        // The vault still opens with the right store afterwards.
        Profile.open(folder, TestKeyStore(), null).use { assertEquals("Ada", it.info().name) }
    }

    @Test
    fun `creating over an existing profile is a Conflict`(): Unit = runBlocking {
        Profile.create(folder, "Ada", TestKeyStore(), null).close()
        val e = assertThrowsSuspend<CarryException.Conflict> {
            Profile.create(folder, "Bea", TestKeyStore(), null).close()
        }
        assertReasonful(e)
        Profile.open(folder, TestKeyStore(), null).use { assertEquals("Ada", it.info().name) }
    }
}
