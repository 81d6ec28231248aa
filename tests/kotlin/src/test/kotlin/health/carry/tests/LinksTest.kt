package health.carry.tests

import health.carry.CarryProfile
import health.carry.isDark
import health.carry.reasonOf
import health.carry.ffi.CarryException
import health.carry.ffi.Category
import health.carry.ffi.NewShareLink
import health.carry.ffi.Profile
import health.carry.ffi.Reading
import health.carry.ffi.Scope
import health.carry.ffi.SharePreset
import health.carry.ffi.WeightUnit
import health.carry.ffi.openShareLink
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assertions.fail
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * Showing a clinician through a real endpoint (`carry-endpoint serve`): a SMART
 * Health Link to the emergency summary behind a passcode, opened by a clinician who
 * needs no profile, its access log coming back to the patient, a revocation, the
 * always-ready emergency card, and the wrapper's calls.
 */
@Timeout(240)
class LinksTest {
    @TempDir
    lateinit var dir: Path

    private val required = listOf("48765-2", "10160-0", "11450-4")

    private fun url(ep: Endpoint) = "http://127.0.0.1:${ep.port}"

    @Test
    fun `a clinician opens the emergency summary with its passcode until it is revoked`(): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp")).use { ep ->
            Profile.create(dir.resolve("patient").toString(), "Alfreda", TestKeyStore(1), null).use { patient ->
                patient.importFile(Fixtures.alfreda.path)
                val emergency = NewShareLink(preset = SharePreset.EMERGENCY, expiresSeconds = 3600, passcode = "4711")

                // No endpoint yet; then refusals before anything is uploaded.
                assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { patient.createShareLink(emergency) })
                patient.setEndpoint(url(ep))
                val custom = assertThrowsSuspend<CarryException.InvalidInput> {
                    patient.createShareLink(NewShareLink(preset = SharePreset.CUSTOM))
                }
                assertTrue("scope" in reasonOf(custom), reasonOf(custom))
                assertThrowsSuspend<CarryException.InvalidInput> {
                    patient.createShareLink(
                        NewShareLink(preset = SharePreset.EMERGENCY, scope = Scope(categories = listOf(Category.MEDICATIONS))),
                    )
                }
                assertThrowsSuspend<CarryException.InvalidInput> {
                    patient.createShareLink(emergency.copy(passcode = "471"))
                }
                assertThrowsSuspend<CarryException.InvalidInput> {
                    patient.createShareLink(emergency.copy(expiresSeconds = 10))
                }
                assertTrue(patient.shareLinks().isEmpty())

                // The link, behind the endpoint's viewer, with a QR code small enough to scan.
                val before = System.currentTimeMillis() / 1000
                val made = patient.createShareLink(emergency)
                val info = made.info
                assertTrue(info.link.startsWith("${url(ep)}/view#shlink:/"), info.link)
                assertEquals(SharePreset.EMERGENCY, info.preset)
                assertEquals("P", info.flags)
                assertEquals("active", info.state)
                assertFalse(info.emergencyCard)
                assertTrue(info.resources > 0, "$info")
                val expiresAt = info.expiresAt ?: fail("no expiry: $info")
                assertTrue(expiresAt in before + 3590..before + 3700, "expires $expiresAt, now $before")
                val qr = made.qr
                assertTrue(qr.version.toInt() in 1..12, "QR version ${qr.version}")
                assertEquals(qr.width.toInt() * qr.width.toInt(), qr.modules.size)
                assertEquals(17 + 4 * qr.version.toInt(), qr.width.toInt())
                assertTrue(qr.isDark(0, 0) && !qr.isDark(7, 7) && !qr.isDark(-1, 0), "finder pattern in the top left, quiet zone around")
                assertEquals(listOf(info.id), patient.shareLinks().map { it.id })

                // The clinician: no passcode, then a wrong one, then the right one.
                val doctor = "Dr Patel, A&E"
                assertReasonful(assertThrowsSuspend<CarryException.Denied> { openShareLink(info.link, null, doctor) })
                val wrong = assertThrowsSuspend<CarryException.Denied> { openShareLink(info.link, "0000", doctor) }
                assertTrue("attempts left" in reasonOf(wrong), reasonOf(wrong))
                val opened = openShareLink(info.link, "4711", doctor)
                val summary = opened.summary ?: fail("no summary in $opened")
                val codes = summary.sections.map { it.code }
                assertTrue(codes.containsAll(required), "sections $codes")
                val patientName = patient.show(patient.info().selfPatient ?: fail("no self patient")).item.display
                assertTrue("Alfreda" in patientName, patientName)
                assertEquals(patientName, summary.name)
                assertNotNull(summary.madeAt)
                assertEquals("document", JSONObject(opened.bundleJson).getString("type"))
                assertEquals(null, opened.label)
                assertEquals(expiresAt, opened.expiresAt)

                // The patient sees who opened it, as they named themselves; the wrong
                // passcode is counted as a refusal, not listed.
                val accesses = patient.shareLinkAccesses(info.id)
                assertEquals(listOf("ok"), accesses.map { it.outcome }, "$accesses")
                assertEquals(doctor, accesses.single().recipient)
                assertEquals(accesses, patient.shareLinkAccesses(info.id.take(10)), "the start of the id will do")
                val listed = patient.shareLinks().single()
                assertEquals(accesses.size.toLong(), listed.accesses)
                assertEquals(1L, listed.refused, "$listed")
                assertNotNull(listed.lastRefusedAt)

                // Revoked: the endpoint stops serving it at once.
                val revoked = patient.revokeShareLink(info.id)
                assertEquals(info.id, revoked.id)
                assertEquals("revoked", revoked.state)
                val gone = assertThrowsSuspend<CarryException.Revoked> { openShareLink(info.link, "4711", doctor) }
                assertTrue("no longer shared" in reasonOf(gone), reasonOf(gone))
                assertReasonful(assertThrowsSuspend<CarryException.NotFound> { patient.revokeShareLink("no-such-link") })

                // The emergency card: one link, kept, opened with no passcode.
                val card = patient.emergencyCard()
                assertTrue(card.info.emergencyCard, "${card.info}")
                assertNotEquals(info.id, card.info.id)
                assertTrue('U' in card.info.flags && 'L' in card.info.flags && 'P' !in card.info.flags, card.info.flags)
                assertTrue(card.info.expiresAt!! > before + 300 * 86_400, "${card.info}")
                assertEquals(card.qr.width.toInt() * card.qr.width.toInt(), card.qr.modules.size)
                assertTrue(card.summary.sections.map { it.code }.containsAll(required), "${card.summary}")
                assertEquals(patientName, card.summary.name)
                val again = patient.emergencyCard()
                assertEquals(card.info.id, again.info.id)
                assertEquals(card.info.link, again.info.link)
                assertEquals(card.qr, again.qr)
                val paramedic = openShareLink(card.info.link, null, "Paramedic")
                assertEquals(
                    card.summary.sections.map { it.code to it.lines },
                    paramedic.summary?.sections?.map { it.code to it.lines },
                )
                assertEquals(listOf(card.info.id, info.id), patient.shareLinks().map { it.id })

                // The audit log holds it all, and its chain is whole.
                val log = patient.auditLog(200u)
                val events = log.map { it.event }
                for (e in listOf("share-created", "share-accessed", "share-revoked")) {
                    assertTrue(e in events, "$e in $events")
                }
                assertTrue(log.any { it.event == "share-accessed" && "Dr Patel" in it.detail }, "$log")
                assertTrue(patient.verifyAudit().ok)
            }
        }
    }

    @Test
    fun `a summary document needs no endpoint and every reference resolves inside it`(): Unit = runBlocking {
        Profile.create(dir.resolve("summary").toString(), "Alfreda", TestKeyStore(3), null).use { patient ->
            patient.importFile(Fixtures.alfreda.path)
            val bundle = JSONObject(patient.summaryDocument(SharePreset.ALL_BUT_RESTRICTED))
            assertEquals("document", bundle.getString("type"))
            val entries = bundle.getJSONArray("entry")
            val urls = (0 until entries.length()).map { entries.getJSONObject(it).getString("fullUrl") }.toSet()
            val refs = mutableListOf<String>()
            fun walk(node: Any?) {
                when (node) {
                    is JSONObject -> node.keys().forEach { k ->
                        val v = node.get(k)
                        if (k == "reference" && v is String) refs.add(v) else if (k != "text") walk(v)
                    }
                    is org.json.JSONArray -> (0 until node.length()).forEach { walk(node.get(it)) }
                }
            }
            walk(bundle)
            assertTrue(refs.size > 20, "${refs.size} references")
            assertEquals(emptyList<String>(), refs.filter { !it.startsWith("#") && it !in urls })
            val custom = assertThrowsSuspend<CarryException.InvalidInput> { patient.summaryDocument(SharePreset.CUSTOM) }
            assertTrue("scope" in reasonOf(custom), reasonOf(custom))
        }
    }

    @Test
    fun `the wrapper makes, refreshes and lists links`(): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp")).use { ep ->
            CarryProfile.create(dir.resolve("w").toFile(), "Clemente", TestKeyStore(1)).use { patient ->
                patient.importFile(Fixtures.clemente)
                patient.setEndpoint(url(ep))

                // Once only, with a label.
                val once = patient.createShareLink(SharePreset.MEDS_ALLERGIES, once = true, label = "For the pharmacy")
                assertEquals(SharePreset.MEDS_ALLERGIES, once.info.preset)
                assertEquals("For the pharmacy", once.info.label)
                val first = openShareLink(once.info.link, recipient = "Pharmacist")
                assertEquals("For the pharmacy", first.label)
                assertTrue(first.summary!!.sections.map { it.code }.containsAll(listOf("48765-2", "10160-0")))
                assertThrowsSuspend<CarryException.Revoked> { openShareLink(once.info.link, recipient = "Pharmacist") }

                // A custom scope.
                val custom = patient.createShareLink(
                    NewShareLink(preset = SharePreset.CUSTOM, scope = Scope(categories = listOf(Category.MEDICATIONS))),
                )
                assertEquals(SharePreset.CUSTOM, custom.info.preset)
                assertNotNull(openShareLink(custom.info.link, recipient = "GP").summary)

                // A long-lived emergency card follows the record: a new weight is uploaded.
                val card = patient.emergencyCard()
                assertEquals(0L, patient.refreshShareLinks(), "nothing changed yet")
                val vitals = { s: health.carry.ffi.PatientSummary? -> s?.sections?.single { it.code == "8716-3" }?.lines }
                val old = vitals(openShareLink(card.info.link, recipient = "Paramedic").summary)
                patient.addReading(Reading.Weight(81.5, WeightUnit.KILOGRAMS))
                assertEquals(1L, patient.refreshShareLinks())
                val new = vitals(openShareLink(card.info.link, recipient = "Paramedic").summary)
                assertNotEquals(old, new, "the card shows the new weight")
                assertEquals(card.info.id, patient.emergencyCard().info.id)

                val all = patient.shareLinks()
                assertEquals(setOf(once.info.id, custom.info.id, card.info.id), all.map { it.id }.toSet())
                assertEquals(2, patient.shareLinkAccesses(card.info.id).count { it.recipient == "Paramedic" })
                assertEquals("revoked", patient.revokeShareLink(card.info.id).state)
                val newCard = patient.emergencyCard()
                assertNotEquals(card.info.id, newCard.info.id, "a revoked card is replaced")

                // Stop sharing with everyone: the live links end (no grants here), and
                // a second call finds nothing left.
                val live = patient.shareLinks().filter { it.state == "active" }.map { it.id }.toSet()
                assertTrue(newCard.info.id in live, "$live")
                val stopped = patient.stopAllSharing()
                assertEquals(live, stopped.links.map { it.id }.toSet())
                assertTrue(stopped.links.all { it.state == "revoked" }, "${stopped.links}")
                assertTrue(stopped.linksNotEnded.isEmpty(), "${stopped.linksNotEnded}")
                assertTrue(stopped.grants.isEmpty(), "${stopped.grants}")
                assertTrue(patient.shareLinks().none { it.state == "active" })
                assertTrue(patient.stopAllSharing().links.isEmpty(), "nothing left to end")
                assertThrowsSuspend<CarryException.Revoked> { openShareLink(newCard.info.link, recipient = "Paramedic") }

                // Not a link at all.
                assertReasonful(assertThrowsSuspend<CarryException.InvalidInput> { openShareLink("shlink:/not-base64!", recipient = "") })
            }
        }
    }
}
