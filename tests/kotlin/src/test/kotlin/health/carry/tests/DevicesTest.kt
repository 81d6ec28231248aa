package health.carry.tests

import health.carry.CarryProfile
import health.carry.ffi.CarryException
import health.carry.ffi.Device
import health.carry.ffi.EnteredBy
import health.carry.ffi.ExchangeReport
import health.carry.ffi.MoveIn
import health.carry.ffi.Profile
import health.carry.ffi.Reading
import health.carry.ffi.TimelineItem
import health.carry.ffi.TimelinePage
import health.carry.ffi.TimelineQuery
import health.carry.ffi.WeightUnit
import health.carry.ffi.startJoin
import health.carry.ffi.startMoveIn
import java.nio.file.Files
import java.nio.file.Path
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * A second device of the same person through a real relay (`carry-endpoint serve`):
 * the phone shows a pairing code for adding a device, the tablet joins with it and
 * shows six digits, and the profile travels when they are typed into the phone.
 * Both then keep it: each lists the two devices, a reading made on either reaches
 * the other through the relay exchange, and the phone can remove the tablet, whose
 * changes are refused from then on. Adding a device is not a move: nothing is wiped.
 */
@Timeout(300)
class DevicesTest {
    @TempDir
    lateinit var dir: Path

    private fun url(ep: Endpoint) = "http://127.0.0.1:${ep.port}"

    /** Every entry the person made themself, following the pages to the end. */
    private suspend fun ownEntries(page: suspend (TimelineQuery) -> TimelinePage): List<TimelineItem> {
        val out = mutableListOf<TimelineItem>()
        var cursor: String? = null
        do {
            val p = page(TimelineQuery(limit = 50u, cursor = cursor))
            out += p.items.filter { it.enteredBy == EnteredBy.PATIENT }
            cursor = p.nextCursor
        } while (cursor != null)
        return out
    }

    private fun List<Device>.self(): Device = single { it.thisDevice }
    private fun List<Device>.other(): Device = single { !it.thisDevice }

    @Test
    fun `a tablet joins the phone's profile, both converge through the relay, and the phone removes it`(): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp")).use { ep ->
            val phoneFolder = dir.resolve("phone")
            val tabletFolder = dir.resolve("tablet")
            Profile.create(phoneFolder.toString(), "Clemente", TestKeyStore(1), null).use { phone ->
                phone.importFile(Fixtures.clemente.path)

                // No endpoint yet: no device can be added.
                assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { phone.startAddDevice("phone") })
                phone.setEndpoint(url(ep))
                assertTrue(phone.devices().isEmpty(), "one device: an empty list")
                val identity = phone.myIdentity()
                val resources = phone.stats().resources
                assertTrue(resources > 0uL)

                // A move's code does not join, and a device's code does not move.
                phone.startMoveOut().use { move ->
                    assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { startJoin(move.code(), "tablet") })
                }

                phone.startAddDevice("phone").use { adding ->
                    assertTrue(adding.code().startsWith("carry:pair:"), adding.code())
                    val qr = adding.qr()
                    assertEquals((qr.width * qr.width).toInt(), qr.modules.size)
                    assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { startMoveIn(adding.code()) })
                    assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { startJoin(adding.code(), "  ") })
                    assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { adding.wipe() })

                    // The tablet takes up the code while the phone waits; the person types
                    // the tablet's digits into the phone; the tablet finishes through the
                    // Android wrapper.
                    val taking = async(Dispatchers.IO) { runCatching { startJoin(adding.code(), "tablet") } }
                    adding.waitForNewDevice(60u)
                    val incoming: MoveIn = taking.await().getOrThrow()
                    val digits = incoming.digits()
                    assertTrue(Regex("""\d{3} \d{3}""").matches(digits), digits)
                    val finishing = async(Dispatchers.IO) {
                        runCatching { CarryProfile.finishMoveIn(incoming, tabletFolder.toFile(), TestKeyStore(2), 60) }
                    }
                    adding.send(digits, 60u)
                    finishing.await().getOrThrow().use { tablet ->
                        // Both list the two devices; the phone, first, is the primary.
                        val onPhone = phone.devices()
                        val onTablet = tablet.devices()
                        assertEquals(2, onPhone.size, "$onPhone")
                        assertEquals(2, onTablet.size, "$onTablet")
                        assertEquals(onPhone.map { it.id }.toSet(), onTablet.map { it.id }.toSet())
                        assertEquals("phone", onPhone.self().name)
                        assertTrue(onPhone.self().primary)
                        assertEquals("tablet", onPhone.other().name)
                        assertFalse(onPhone.other().primary)
                        val me = onTablet.self()
                        assertEquals("tablet", me.name)
                        assertFalse(me.primary, "the tablet is not the primary")
                        assertTrue(onTablet.other().primary)
                        assertEquals(onPhone.self().id, onTablet.other().id)
                        assertTrue(onPhone.all { it.removedAt == null && it.addedAt > 0 })
                        val tabletId = me.id

                        // Same identity and record, and the phone keeps its copy.
                        val there = tablet.myIdentity()
                        assertEquals(identity.person, there.person)
                        assertEquals(identity.keys, there.keys)
                        assertEquals(resources, tablet.stats().resources)
                        assertTrue(tablet.verifyAudit().ok)
                        assertFalse(phone.isLocked())

                        // Adding a device was not a move: wipe refuses, nothing is deleted.
                        assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { adding.wipe() })
                        assertFalse(phone.isLocked())
                        assertTrue(Files.exists(phoneFolder.resolve("vault.db")))
                        assertEquals(resources, phone.stats().resources)

                        // A reading on each, then exchanges: tablet, phone, tablet, phone.
                        val weight = phone.addReading(Reading.Weight(70.0, WeightUnit.KILOGRAMS), "on the phone")
                        val bp = tablet.addReading("bp", "121/79", note = "on the tablet")
                        val reports = mutableListOf<ExchangeReport>()
                        repeat(2) {
                            reports += tablet.exchange()
                            reports += phone.exchange(null)
                        }
                        val devices = reports.map { it.devices }
                        assertTrue(devices.any { it.batchesOut > 0uL }, "$devices")
                        assertTrue(devices.any { it.batchesIn > 0uL }, "$devices")
                        assertTrue(devices.any { it.changesIn > 0uL }, "$devices")
                        assertTrue(devices.all { it.refused == 0uL }, "$devices")

                        assertEquals(resources + 2uL, phone.stats().resources)
                        assertEquals(resources + 2uL, tablet.stats().resources)
                        val ownOnPhone = ownEntries { phone.timeline(it) }
                        val ownOnTablet = ownEntries { tablet.timeline(it) }
                        assertEquals(2, ownOnPhone.size, "$ownOnPhone")
                        assertEquals(
                            ownOnPhone.map { it.resourceType to it.display }.toSet(),
                            ownOnTablet.map { it.resourceType to it.display }.toSet(),
                        )
                        val displays = ownOnPhone.map { it.display }.toSet()
                        assertTrue(weight.display in displays && bp.display in displays, "$displays")
                        assertTrue(phone.verifyAudit().ok)
                        assertTrue(tablet.verifyAudit().ok)

                        // The primary can be named again; bad ids are refused.
                        phone.setPrimaryDevice(onPhone.self().id)
                        assertTrue(phone.devices().self().primary)
                        assertReasonful(assertThrowsSuspend<CarryException.NotFound> { phone.setPrimaryDevice("nope") })
                        assertReasonful(assertThrowsSuspend<CarryException.NotFound> { phone.removeDevice("nope") })
                        assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> {
                            phone.removeDevice(onPhone.self().id)
                        })

                        // The phone removes the tablet: listed as removed, nothing more taken from it,
                        // and the profile's recovery code is replaced.
                        val oldCode = phone.recoveryCode()
                        val newCode = phone.removeDevice(tabletId)
                        assertNotEquals(oldCode, newCode)
                        assertEquals(newCode, phone.recoveryCode())
                        val after = phone.devices()
                        assertEquals(2, after.size)
                        val removed = after.single { it.id == tabletId }
                        assertNotNull(removed.removedAt)
                        assertFalse(removed.primary)
                        assertNull(after.self().removedAt)
                        assertTrue(after.self().primary)
                        assertReasonful(assertThrowsSuspend<CarryException.Revoked> { phone.removeDevice(tabletId) })
                        assertReasonful(assertThrowsSuspend<CarryException.Revoked> { phone.setPrimaryDevice(tabletId) })

                        phone.exchange(null)
                        tablet.addReading("pulse", "61")
                        tablet.exchange()
                        val refused = phone.exchange(null).devices
                        assertTrue(refused.refused >= 1uL, "the removed tablet's batch is refused: $refused")
                        assertEquals(resources + 2uL, phone.stats().resources, "nothing from the removed tablet")
                    }
                }
            }
        }
    }
}
