package health.carry.tests

import health.carry.ffi.Basis
import health.carry.ffi.BasisKind
import health.carry.ffi.CarryException
import health.carry.ffi.Decider
import health.carry.ffi.NewDependant
import health.carry.ffi.NoticeKind
import health.carry.ffi.Profile
import health.carry.ffi.ProxyStanding
import health.carry.ffi.startMoveIn
import java.nio.file.Files
import java.nio.file.Path
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * A carer keeps the record of someone with no phone through the bindings: made with
 * its basis, opened as a profile of its own, refused with typed errors for bad
 * terms, and handed over to the person's own phone through a real relay, after
 * which the keeper's copy is gone and the owner knows the keeper, verified.
 */
@Timeout(240)
class DependantsTest {
    @TempDir
    lateinit var dir: Path

    private fun lpa(name: String) = NewDependant(
        name = name,
        born = "1941-03-02",
        basis = Basis(
            kind = BasisKind.LASTING_POWER_OF_ATTORNEY,
            evidence = "OPG 7000-1234",
            decidedBy = Decider.PERSON,
        ),
    )

    @Test
    fun `a keeper makes, opens and lists a dependant's record, and bad terms change nothing`(): Unit = runBlocking {
        Profile.create(dir.resolve("tom").toString(), "Tom Jene", TestKeyStore(1), null).use { tom ->
            val mary = tom.addDependant(lpa("Mary Jene"))
            assertTrue(mary.profile.startsWith("d-"), mary.profile)
            assertEquals(ProxyStanding.ACTIVE, mary.standing)
            assertEquals(Decider.PERSON, mary.basis.decidedBy)
            assertEquals(NoticeKind.Removed, mary.notices.last().kind, "five years unused")

            tom.openDependant("Mary Jene").use { rec ->
                rec.importFile(Fixtures.alfreda.path)
                assertTrue(rec.stats().resources > 0uL)
                assertEquals("Mary Jene", rec.myIdentity().name)
                assertTrue(rec.auditLog(50u).any { it.event == "keeper-recorded" })
            }
            assertEquals(0uL, tom.stats().resources, "the keeper's own record is apart")
            val listed = tom.dependants().single()
            assertNotNull(listed.lastUsedAt, "opening counts as use")
            assertTrue(tom.dependantNotices().isEmpty())
            assertTrue(tom.auditLog(50u).any { it.event == "dependant-added" })

            // Bad terms: typed errors, nothing made.
            val child = NewDependant(
                name = "Ava",
                basis = Basis(kind = BasisKind.PARENTAL_RESPONSIBILITY),
            )
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { tom.addDependant(child) })
            assertReasonful(assertThrowsSuspend<CarryException.Denied> {
                tom.addDependant(child.copy(born = "2001-01-01"))
            })
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> {
                tom.addDependant(lpa("Mary").copy(born = "soon"))
            })
            assertEquals(1, tom.dependants().size)
            assertReasonful(assertThrowsSuspend<CarryException.NotFound> { tom.openDependant("nobody") })

            assertEquals("Mary Jene", tom.removeDependant(mary.profile, false))
            assertTrue(tom.dependants().isEmpty())
            assertTrue(tom.auditLog(50u).any { it.event == "dependant-removed" })
        }
    }

    @Test
    fun `a dependant's record is handed over to their own phone`(): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp")).use { ep ->
            Profile.create(dir.resolve("tom").toString(), "Tom Jene", TestKeyStore(1), null).use { tom ->
                tom.setEndpoint("http://127.0.0.1:${ep.port}")
                val mary = tom.addDependant(lpa("Mary Jene"))
                val resources = tom.openDependant(mary.profile).use { rec ->
                    rec.importFile(Fixtures.alfreda.path)
                    rec.stats().resources
                }
                val out = tom.startHandOver(mary.profile)
                val taking = async(Dispatchers.IO) { runCatching { startMoveIn(out.code()) } }
                out.waitForNewDevice(60u)
                val incoming = taking.await().getOrThrow()
                val hers = dir.resolve("mary-phone")
                val finishing = async(Dispatchers.IO) {
                    runCatching { incoming.finish(hers.toString(), TestKeyStore(2), 60u) }
                }
                out.send(incoming.digits(), 60u)
                finishing.await().getOrThrow().use { moved ->
                    assertEquals("Mary Jene", moved.myIdentity().name)
                    assertEquals(resources, moved.stats().resources)
                    val events = moved.auditLog(200u).map { it.event }
                    assertTrue("handed-over" in events && "moved-in" in events, "$events")
                    val keeper = moved.people().single()
                    assertEquals("Tom Jene", keeper.name)
                    assertTrue(keeper.verified, "she can grant him access back")
                }
                assertEquals("Mary Jene", tom.removeDependant(mary.profile, true))
                assertTrue(tom.dependants().isEmpty())
                assertFalse(Files.exists(dir.resolve("tom").resolve("dependants").resolve(mary.profile)))
            }
        }
    }
}
