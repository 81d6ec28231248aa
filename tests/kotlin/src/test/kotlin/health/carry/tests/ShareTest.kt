package health.carry.tests

import health.carry.CarryProfile
import health.carry.ffi.CarryException
import health.carry.ffi.Category
import health.carry.ffi.NewGrant
import health.carry.ffi.Profile
import health.carry.ffi.Reading
import health.carry.ffi.Role
import health.carry.ffi.Scope
import health.carry.ffi.TimelineItem
import health.carry.ffi.TimelineQuery
import java.nio.file.Path
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * Sharing between two profiles through a real relay (`carry-endpoint serve`): an
 * invite taken up, safety numbers that match, a verified grant that reports new
 * access to `Events`, the scoped record arriving as a separate profile, a carer's
 * reading travelling back, and a revocation that deletes the copy.
 */
@Timeout(240)
class ShareTest {
    @TempDir
    lateinit var dir: Path

    private val shared = listOf(Category.MEDICATIONS, Category.VITAL_SIGNS)

    private fun url(ep: Endpoint) = "http://127.0.0.1:${ep.port}"

    private suspend fun wholeTimeline(p: Profile): List<TimelineItem> {
        val all = mutableListOf<TimelineItem>()
        var query = TimelineQuery(limit = 500u)
        while (true) {
            val page = p.timeline(query)
            all += page.items
            query = query.copy(cursor = page.nextCursor ?: break)
        }
        return all
    }

    @Test
    fun `a patient shares part of the record with a carer, and takes it back`(): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp")).use { ep ->
            val patientEvents = RecordingEvents()
            val carerEvents = RecordingEvents()
            val caller = Thread.currentThread()
            Profile.create(dir.resolve("patient").toString(), "Alfreda", TestKeyStore(1), patientEvents).use { patient ->
                Profile.create(dir.resolve("carer").toString(), "Sam", TestKeyStore(2), carerEvents).use { carer ->
                    patient.importFile(Fixtures.alfreda.path)

                    // No endpoint yet: none reported, and no invite can be made.
                    assertNull(patient.endpoint())
                    assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { patient.createInvite() })
                    patient.setEndpoint(url(ep))
                    assertEquals(url(ep), patient.endpoint())

                    val invite = patient.createInvite()
                    assertTrue(invite.expiresAt > System.currentTimeMillis() / 1000, "$invite")

                    // The carer takes it up; the invite carries the endpoint too, but
                    // does not choose it for a profile that has none unless asked.
                    val me = patient.myIdentity()
                    assertEquals("Alfreda", me.name)
                    assertEquals(url(ep), me.endpoint)
                    assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { carer.acceptInvite(invite.code) })
                    assertNull(carer.endpoint(), "an invite alone sets no endpoint")
                    val inviter = carer.acceptInvite(invite.code, adoptEndpoint = true)
                    assertEquals(me.person, inviter.person)
                    assertEquals("Alfreda", inviter.name)
                    assertFalse(inviter.verified)
                    assertEquals(url(ep), carer.endpoint())

                    val added = patient.exchange(null)
                    val carerId = carer.myIdentity().person
                    assertEquals(listOf(carerId), added.peopleAdded, "$added")
                    assertTrue(added.refused.isEmpty(), "$added")

                    // Both see each other, with the same safety number.
                    val sam = patient.people().single()
                    val alfreda = carer.people().single()
                    assertEquals(carerId, sam.person)
                    assertEquals("Sam", sam.name)
                    assertEquals(me.person, alfreda.person)
                    assertEquals(sam.fingerprint, alfreda.fingerprint, "the safety numbers match")
                    assertTrue(sam.fingerprint.isNotBlank())

                    // Restricted labels need a verified person.
                    val restricted = NewGrant(
                        person = carerId,
                        role = Role.VIEWER,
                        scope = Scope(categories = shared, includeLabels = listOf("PSY")),
                        purpose = "help with my mood diary",
                    )
                    assertReasonful(assertThrowsSuspend<CarryException.Denied> { patient.grant(restricted) })
                    assertTrue(patient.whoCanSee().isEmpty(), "a refused grant is not kept")
                    assertTrue(patientEvents.newAccess.isEmpty(), "${patientEvents.newAccess}")

                    assertTrue(patient.verifyPerson(carerId).verified)
                    assertTrue(patient.people().single().verified)

                    // The grant: new access, reported once to Events, off the caller's thread.
                    val grant = patient.grant(
                        NewGrant(
                            person = carerId,
                            role = Role.CONTRIBUTOR,
                            scope = Scope(categories = shared),
                            purpose = "help with my medicines and blood pressure",
                        ),
                    )
                    assertTrue(grant.newAccess, "$grant")
                    assertEquals("out", grant.direction)
                    assertEquals("active", grant.state)
                    assertEquals(Role.CONTRIBUTOR, grant.role)
                    assertEquals(shared, grant.scope.categories)
                    val calls = synchronized(patientEvents.newAccess) { patientEvents.newAccess.toList() }
                    assertEquals(1, calls.size, "onNewAccess once: $calls")
                    val call = calls.single()
                    assertEquals(carerId, call.person)
                    assertEquals("Sam", call.name)
                    assertEquals(grant.grant, call.grantId)
                    assertNotEquals(caller.id, call.thread.id, "called on the caller's thread ${caller.name}")

                    // Changing the grant is not new access.
                    val changed = patient.grant(
                        NewGrant(
                            person = carerId,
                            role = Role.CONTRIBUTOR,
                            scope = Scope(categories = shared),
                            purpose = "help with my medicines and my blood pressure",
                        ),
                    )
                    assertFalse(changed.newAccess, "$changed")
                    assertEquals(grant.grant, changed.grant)
                    assertEquals(2u, changed.revision)
                    assertEquals(1, patientEvents.newAccess.size, "${patientEvents.newAccess}")
                    assertEquals(listOf(grant.grant), patient.whoCanSee().map { it.grant })

                    val document = patient.grantDocument(grant.grant)
                    assertTrue("\"carry-grant\"" in document, document)
                    assertTrue("\"Consent\"" in patient.consent(grant.grant))

                    // Delivery.
                    val sent = patient.exchange(null)
                    assertTrue(sent.posted > 0uL, "$sent")
                    val got = carer.exchange(null)
                    assertTrue(got.refused.isEmpty(), "$got")
                    assertTrue(grant.grant in got.grantsReceived, "$got")
                    assertTrue(carerEvents.newAccess.isEmpty(), "the grantee gains no access to its own record")

                    val received = carer.receivedProfiles().single()
                    assertEquals(me.person, received.profile)
                    assertEquals("Alfreda", received.name)
                    assertEquals(grant.grant, received.grant)
                    assertEquals(Role.CONTRIBUTOR, received.role)
                    assertFalse(received.owner)
                    val inbound = carer.grants().single()
                    assertEquals("in", inbound.direction)
                    assertEquals(grant.grant, inbound.grant)

                    val expected = patient.viewAs(carerId)
                    assertTrue(expected.isNotEmpty())
                    assertTrue(expected.all { it.category in shared }, "view-as: ${expected.map { it.category }.toSet()}")
                    val arrived = carer.openReceived(me.person).use { copy ->
                        val items = wholeTimeline(copy)
                        assertTrue(items.isNotEmpty(), "nothing arrived")
                        assertTrue(
                            items.all { it.category in shared },
                            "outside the scope: ${items.filter { it.category !in shared }}",
                        )
                        items
                    }
                    assertEquals(expected.size, arrived.size, "view-as shows what arrived")
                    assertEquals(expected.map { it.display }.sorted(), arrived.map { it.display }.sorted())

                    // A carer's reading travels back and is applied.
                    carer.contribute(me.person, Reading.HeartRate(64u), "after lunch")
                    assertTrue(carer.exchange(null).posted > 0uL)
                    val applied = patient.exchange(null)
                    assertEquals(1uL, applied.contributions, "$applied")

                    // Revoke: both exchange, and the carer's copy is gone.
                    val revoked = patient.revoke(grant.grant)
                    assertEquals("revoked", revoked.state)
                    assertTrue(patient.whoCanSee().isEmpty())
                    assertReasonful(assertThrowsSuspend<CarryException.Revoked> { patient.revoke(grant.grant) })
                    patient.exchange(null)
                    val removed = carer.exchange(null)
                    assertTrue(grant.grant in removed.recordsRemoved, "$removed")
                    assertTrue(carer.receivedProfiles().isEmpty(), "${carer.receivedProfiles()}")
                    assertReasonful(assertThrowsSuspend<CarryException.NotFound> { carer.openReceived(me.person) })

                    // The audit log holds it all, and its chain is whole.
                    for (p in listOf(patient, carer)) {
                        val check = p.verifyAudit()
                        assertTrue(check.ok, "$check")
                        assertNull(check.brokenAt)
                        assertTrue(check.entries > 0)
                    }
                    val log = patient.auditLog(100u)
                    assertTrue(log.size <= 100)
                    val events = log.map { it.event }.toSet()
                    for (e in listOf("grant-created", "grant-changed", "grant-revoked", "person-verified")) {
                        assertTrue(e in events, "$e in $events")
                    }
                    assertTrue(log.zipWithNext().all { (a, b) -> a.seq > b.seq }, "newest first")
                    assertEquals(1, patientEvents.newAccess.size, "still once: ${patientEvents.newAccess}")
                }
            }
        }
    }

    @Test
    fun `a garbage invite code is refused as InvalidInput`(): Unit = runBlocking {
        Profile.create(dir.resolve("p").toString(), "Sam", TestKeyStore(), RecordingEvents()).use { p ->
            for (code in listOf("hello", "carry:invite:not-base64!", "carry:invite:e30")) {
                assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { p.acceptInvite(code) })
            }
            assertTrue(p.people().isEmpty(), "nobody was added")
            assertNull(p.endpoint(), "a refused invite sets no endpoint")
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { p.setEndpoint("http://example.org") })
            assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { p.exchange(null) })
        }
    }

    @Test
    fun `the Android wrapper shares and reports new access as a flow`(): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp")).use { ep ->
            CarryProfile.create(dir.resolve("a").toFile(), "Clemente", TestKeyStore(1)).use { patient ->
                CarryProfile.create(dir.resolve("b").toFile(), "Sam", TestKeyStore(2)).use { carer ->
                    patient.importFile(Fixtures.clemente)
                    patient.setEndpoint(url(ep))
                    val person = carer.acceptInvite(patient.createInvite().code, adoptEndpoint = true)
                    patient.exchange()
                    val carerId = carer.myIdentity().person

                    val access = async(start = CoroutineStart.UNDISPATCHED) { patient.newAccess.first() }
                    // Not verified: refused, saying why, unless the person says so.
                    assertReasonful(
                        assertThrowsSuspend<CarryException.Denied> {
                            patient.grant(carerId, Role.VIEWER, listOf(Category.VITAL_SIGNS), "to keep an eye on me")
                        },
                    )
                    val grant = patient.grant(
                        carerId,
                        Role.VIEWER,
                        listOf(Category.VITAL_SIGNS),
                        "to keep an eye on me",
                        unverified = true,
                    )
                    assertTrue(grant.newAccess)
                    val seen = withTimeout(10_000) { access.await() }
                    assertEquals(carerId, seen.person)
                    assertEquals("Sam", seen.name)
                    assertEquals(grant.grant, seen.grantId)

                    patient.exchange(budgetSeconds = 30)
                    carer.exchange()
                    val copy = carer.receivedProfiles().single()
                    assertEquals(person.person, copy.profile)
                    carer.openReceived(copy.profile).use { record ->
                        val items = record.timeline(TimelineQuery(limit = 500u)).items
                        assertTrue(items.isNotEmpty())
                        assertTrue(items.all { it.category == Category.VITAL_SIGNS })
                    }
                    assertReasonful(
                        assertThrowsSuspend<CarryException.Denied> {
                            carer.contribute(copy.profile, Reading.HeartRate(70u))
                        },
                    )
                    assertTrue(patient.verifyAudit().ok)
                }
            }
        }
    }
}
