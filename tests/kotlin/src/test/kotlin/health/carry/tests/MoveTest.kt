package health.carry.tests

import health.carry.CarryProfile
import health.carry.ffi.CarryException
import health.carry.ffi.MoveIn
import health.carry.ffi.Profile
import health.carry.ffi.startMoveIn
import java.nio.file.Files
import java.nio.file.Path
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * Moving a profile to a new phone through a real relay (`carry-endpoint serve`): the
 * old phone shows a pairing code, the new phone takes it up and shows six digits,
 * and the profile travels only when those digits are typed into the old phone. Wrong
 * digits send nothing and stop the new phone too; the right ones bring the same
 * identity and record across, and the old copy can then be wiped.
 */
@Timeout(240)
class MoveTest {
    @TempDir
    lateinit var dir: Path

    private fun url(ep: Endpoint) = "http://127.0.0.1:${ep.port}"

    @Test
    fun `a profile moves only to the phone whose digits were typed, then the old copy is wiped`(): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp")).use { ep ->
            val oldFolder = dir.resolve("old-phone")
            val newFolder = dir.resolve("new-phone")
            Profile.create(oldFolder.toString(), "Alfreda", TestKeyStore(1), null).use { old ->
                old.importFile(Fixtures.alfreda.path)

                // No endpoint yet: no move can start.
                assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { old.startMoveOut() })
                old.setEndpoint(url(ep))
                val identity = old.myIdentity()
                val resources = old.stats().resources
                assertTrue(resources > 0uL)

                // First attempt: the person types other digits than the new phone shows.
                val first = old.startMoveOut()
                assertTrue(first.code().startsWith("carry:pair:"), first.code())
                val qr = first.qr()
                assertEquals((qr.width * qr.width).toInt(), qr.modules.size)
                assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { first.wipe() })
                assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { first.send("000 000", 5u) })

                val taking = async(Dispatchers.IO) { runCatching { startMoveIn(first.code()) } }
                first.waitForNewDevice(60u)
                val incoming: MoveIn = taking.await().getOrThrow()
                val digits = incoming.digits()
                assertTrue(Regex("""\d{3} \d{3}""").matches(digits), digits)
                val finishing = async(Dispatchers.IO) {
                    runCatching { incoming.finish(newFolder.toString(), TestKeyStore(2), 60u) }
                }
                val wrong = if (digits == "000 000") "111 111" else "000 000"
                assertReasonful(assertThrowsSuspend<CarryException.Denied> { first.send(wrong, 60u) })
                val refused = finishing.await().exceptionOrNull()
                assertTrue(refused is CarryException.Denied, "the new phone is told to stop: $refused")
                assertFalse(Files.exists(newFolder.resolve("vault.db")), "nothing arrived")
                assertTrue(Files.exists(oldFolder.resolve("vault.db")))
                assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> {
                    incoming.finish(newFolder.toString(), TestKeyStore(2), 5u)
                })
                assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { first.wipe() })
                assertEquals(resources, old.stats().resources, "the old phone still works")

                // Second attempt with the digits the new phone shows; the new side goes
                // through the Android wrapper.
                val second = old.startMoveOut()
                val taking2 = async(Dispatchers.IO) { runCatching { startMoveIn(second.code()) } }
                second.waitForNewDevice(60u)
                val incoming2 = taking2.await().getOrThrow()
                val finishing2 = async(Dispatchers.IO) {
                    runCatching { CarryProfile.finishMoveIn(incoming2, newFolder.toFile(), TestKeyStore(2), 60) }
                }
                second.send(incoming2.digits(), 60u)
                finishing2.await().getOrThrow().use { moved ->
                    val there = moved.myIdentity()
                    assertEquals(identity.person, there.person)
                    assertEquals(identity.keys, there.keys)
                    assertEquals(identity.fingerprint, there.fingerprint)
                    assertEquals(identity.name, there.name)
                    assertEquals(resources, moved.stats().resources)
                    assertTrue(moved.verifyAudit().ok)
                    val events = moved.auditLog(200).map { it.event }
                    assertTrue("moved-in" in events && "moved-out" in events, "$events")
                }

                // Now the old copy can go.
                second.wipe()
                assertTrue(old.isLocked())
                assertFalse(Files.exists(oldFolder), "the old phone's copy is wiped")
                assertTrue(Files.exists(newFolder.resolve("vault.db")))
            }
        }
    }
}
