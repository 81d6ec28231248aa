package health.carry.tests

import health.carry.CarryProfile
import health.carry.ffi.CarryException
import health.carry.ffi.NewSource
import health.carry.ffi.Profile
import health.carry.ffi.ProviderKind
import health.carry.ffi.Reading
import health.carry.ffi.SourceAuth
import health.carry.ffi.SyncReport
import health.carry.ffi.SyncState
import health.carry.ffi.TimelineItem
import health.carry.ffi.TimelineQuery
import health.carry.ffi.sandboxConsent
import java.nio.file.Path
import java.util.concurrent.atomic.AtomicBoolean
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/**
 * Provider sync against the reference endpoint: SMART sign-in through the sandbox
 * consent, pulls from two providers, a reading pushed and pulled back, typed errors,
 * and a cancelled sync.
 */
@Timeout(180)
class SyncTest {
    @TempDir
    lateinit var dir: Path

    private val folder get() = dir.resolve("p").toString()

    private fun smart(name: String, kind: ProviderKind, ep: Endpoint) =
        NewSource(name = name, kind = kind, baseUrl = ep.base(name), auth = SourceAuth.Smart(null, null))

    private suspend fun signIn(p: Profile, name: String, patientId: String) {
        val url = p.beginSignIn(name, REDIRECT)
        val redirected = sandboxConsent(url, patientId)
        assertTrue(redirected.startsWith(REDIRECT), "the consent redirects to the app: $redirected")
        val info = p.completeSignIn(name, redirected)
        assertTrue(info.signedIn, "$name after sign-in: $info")
        assertEquals(patientId, info.patientId)
    }

    /** Clemente split between a GP and a hospital, a profile signed in to both. */
    private fun withClemente(block: suspend (Profile, RecordingEvents, Endpoint) -> Unit): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp", "hospital"), split = true).use { ep ->
            assertEquals(mapOf("gp" to CLEMENTE_GP.toLong(), "hospital" to CLEMENTE_HOSPITAL.toLong()), ep.seeded)
            val events = RecordingEvents()
            Profile.create(folder, "Clemente", TestKeyStore(), events).use { p ->
                p.addSource(smart("gp", ProviderKind.GP, ep))
                p.addSource(smart("hospital", ProviderKind.HOSPITAL, ep))
                signIn(p, "gp", CLEMENTE_ID)
                signIn(p, "hospital", CLEMENTE_ID)
                block(p, events, ep)
            }
        }
    }

    private fun List<SyncReport>.of(source: String): SyncReport =
        singleOrNull { it.source == source } ?: throw AssertionError("no single report for $source in $this")

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
    fun `syncing a GP and a hospital brings the whole record, the Patient once`() = withClemente { p, events, _ ->
        val caller = Thread.currentThread()
        val sources = p.sources()
        assertEquals(listOf("gp", "hospital"), sources.map { it.name })
        assertTrue(sources.all { it.signedIn && it.auth == "smart" }, "$sources")
        assertEquals(listOf(true, false), sources.map { it.push }, "readings go only to the GP by default")

        val reports = p.sync(null, null, false)
        assertEquals(2, reports.size, "$reports")
        for ((name, expected) in listOf("gp" to CLEMENTE_GP, "hospital" to CLEMENTE_HOSPITAL)) {
            val r = reports.of(name)
            assertTrue(r.complete, "$name: $r")
            assertEquals(SyncState.IDLE, r.state, "$name: $r")
            assertEquals(null, r.error)
            assertEquals(expected, r.fetched, "$name fetched")
            assertEquals(expected, r.changed, "$name: everything is new")
            assertTrue(r.requests > 0uL)
        }
        assertEquals(CLEMENTE_GP + CLEMENTE_HOSPITAL, p.stats().resources)
        assertEquals(2uL, p.stats().byType["Patient"], "each provider's Patient is kept")

        val patients = wholeTimeline(p).filter { it.resourceType == "Patient" }
        assertEquals(1, patients.size, "the Patient shows once: $patients")
        val patient = patients.single()
        assertTrue(patient.source in setOf("gp", "hospital"), patient.source)
        val other = if (patient.source == "gp") "hospital" else "gp"
        assertEquals(listOf(other), patient.alsoFrom)

        assertTrue(p.sources().all { it.state == SyncState.IDLE && it.lastSyncedAt != null && it.lastError == null })

        // Every call arrived before sync returned, on a Rust thread.
        val states = events.syncStates
        assertTrue(SyncState.PULL in states, "states: $states")
        assertTrue(SyncState.IDLE in states, "states: $states")
        for (name in listOf("gp", "hospital")) {
            val mine = synchronized(events.syncProgress) { events.syncProgress.filter { it.source == name } }
            assertEquals(SyncState.IDLE, mine.last().state, "$name ends Idle: $mine")
            assertTrue(mine.any { it.state == SyncState.PULL }, "$name: $mine")
        }
        assertEquals(events.syncCalls.get(), states.size)
        assertFalse(caller.id in events.syncThreadIds, "called on the caller's thread ${caller.name}")
        assertFalse(caller.name in events.syncThreads)
    }

    @Test
    fun `a provider whose pages come up short leaves the sync Partial with its reason`(): Unit = runBlocking {
        // Every search page loses its next link and promises one resource more.
        Endpoint.start(dir, Fixtures.clemente, listOf("gp"), serveArgs = listOf("--auth", "none", "--fault", "short/1"))
            .use { ep ->
                Profile.create(folder, "Clemente", TestKeyStore(), RecordingEvents()).use { p ->
                    p.addSource(
                        NewSource(
                            name = "gp", kind = ProviderKind.GP, baseUrl = ep.base("gp"),
                            auth = SourceAuth.None, patientId = CLEMENTE_ID, push = false,
                        ),
                    )
                    val r = p.sync("gp", null, false).single()
                    assertEquals(SyncState.PARTIAL, r.state, "$r")
                    assertFalse(r.complete, "a partial run never reports complete: $r")
                    assertEquals(null, r.error)
                    val why = r.partial ?: throw AssertionError("the reason reaches the app: $r")
                    assertTrue("promised" in why && "delivered" in why, why)
                    assertEquals(0uL, r.refused)
                    val source = p.sources().single()
                    assertEquals(SyncState.PARTIAL, source.state)
                    assertEquals(why, source.lastError)

                    // The provider moved: the source follows it, and keeps what it had.
                    val moved = ep.base("gp").replace("127.0.0.1", "localhost")
                    assertEquals(moved, p.setSourceUrl("gp", moved).baseUrl)
                    assertReasonful(assertThrowsSuspend<CarryException.NotFound> { p.setSourceUrl("nobody", moved) })
                }
            }
    }

    @Test
    fun `a second sync fetches nothing new`() = withClemente { p, _, _ ->
        val first = p.sync(null, null, false)
        assertTrue(first.all { it.complete }, "$first")
        val again = p.sync(null, null, false)
        assertEquals(listOf("gp", "hospital"), again.map { it.source }.sorted())
        for (r in again) {
            assertTrue(r.complete, "$r")
            assertEquals(0uL, r.fetched, "${r.source} fetched again: $r")
            assertEquals(0uL, r.changed)
        }
        assertEquals(CLEMENTE_GP + CLEMENTE_HOSPITAL, p.stats().resources)
    }

    @Test
    fun `a reading goes to the GP and comes back grouped under it`() = withClemente { p, _, _ ->
        assertTrue(p.sync(null, null, false).all { it.complete })
        assertTrue(p.outbox().isEmpty())

        // A reading joins the outbox at once, for the GP only, and waits there.
        val reading = p.addReading(Reading.BloodPressure(128u, 84u), "after a walk")
        val waiting = p.outbox().single()
        assertEquals("pending", waiting.state)
        assertEquals("gp", waiting.source)
        assertEquals(reading.id, waiting.itemId)

        val push = p.sync(null, null, false)
        assertTrue(push.all { it.complete }, "$push")
        assertEquals(1uL, push.of("gp").pushed)
        assertEquals(0uL, push.of("hospital").pushed, "readings do not go to the hospital")

        val sent = p.outbox().single()
        assertEquals("gp", sent.source)
        assertEquals("sent", sent.state)
        assertEquals(reading.id, sent.itemId)
        assertNotNull(sent.sentAt)
        assertEquals(null, sent.lastError)

        val back = p.sync(null, null, false)
        assertTrue(back.all { it.complete }, "$back")
        assertTrue(back.of("gp").fetched >= 1uL, "the GP now holds the reading: $back")
        assertEquals(0uL, back.of("gp").pushed, "sent once only")
        val newest = p.timeline(TimelineQuery(limit = 1u)).items.single()
        assertEquals(listOf("gp"), newest.alsoFrom, "newest: $newest")
        assertEquals(reading.display, newest.display)
        assertEquals("sent", p.outbox().single().state)
    }

    @Test
    fun `errors are typed, and an unreachable provider is a report, not a throw`(): Unit = runBlocking {
        Profile.create(folder, "Ada", TestKeyStore(), RecordingEvents()).use { p ->
            assertReasonful(
                assertThrowsSuspend<CarryException.InvalidInput> {
                    p.addSource(NewSource("ftp", ProviderKind.GP, "ftp://127.0.0.1/fhir", SourceAuth.Smart(null, null)))
                },
            )
            assertTrue(p.sources().isEmpty(), "a refused source is not kept")

            val offline = NewSource(
                name = "offline",
                kind = ProviderKind.OTHER,
                baseUrl = "http://127.0.0.1:9/fhir",
                auth = SourceAuth.None,
                patientId = "nobody",
            )
            p.addSource(offline)
            assertReasonful(assertThrowsSuspend<CarryException.Conflict> { p.addSource(offline) })
            assertEquals(listOf("offline"), p.sources().map { it.name })

            val started = System.nanoTime()
            val report = p.sync("offline", 5u, false).single()
            val seconds = (System.nanoTime() - started) / 1e9
            assertEquals("offline", report.source)
            assertFalse(report.complete, "$report")
            assertEquals(SyncState.OFFLINE, report.state, "$report")
            assertNotNull(report.error)
            assertTrue(seconds < 30, "the 5 s budget bounds the sync: ${"%.1f".format(seconds)} s")
            val info = p.sources().single()
            assertEquals(SyncState.OFFLINE, info.state)
            assertNotNull(info.lastError)

            assertThrowsSuspend<CarryException.NotFound> { p.sync("nosuch", null, false) }
        }
    }

    @Test
    fun `a redirect with the wrong state is an Auth error`(): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp", "hospital"), split = true).use { ep ->
            Profile.create(folder, "Clemente", TestKeyStore(), null).use { p ->
                p.addSource(smart("gp", ProviderKind.GP, ep))
                val redirected = sandboxConsent(p.beginSignIn("gp", REDIRECT), CLEMENTE_ID)
                val state = Regex("""[?&]state=([^&#]+)""")
                assertNotNull(state.find(redirected), "the redirect carries a state: $redirected")
                val forged = redirected.replace(state) { it.value.replace(it.groupValues[1], "not-the-state") }
                assertTrue(forged != redirected)
                assertReasonful(assertThrowsSuspend<CarryException.Auth> { p.completeSignIn("gp", forged) })
                assertFalse(p.sources().single().signedIn, "a refused sign-in keeps no credentials")
            }
        }
    }

    @Test
    fun `a cancelled sync leaves a working profile and the next sync completes`(): Unit = runBlocking {
        val slow = listOf("--fault", "delay/1", "--fault-delay-ms", "400")
        Endpoint.start(dir, Fixtures.jene, listOf("gp"), serveArgs = slow).use { ep ->
            assertEquals(mapOf("gp" to Fixtures.JENE_RESOURCES.toLong()), ep.seeded)
            val events = RecordingEvents()
            Profile.create(folder, "Jene", TestKeyStore(), events).use { p ->
                p.addSource(smart("gp", ProviderKind.GP, ep))
                signIn(p, "gp", JENE_ID)

                val finished = AtomicBoolean(false)
                val cancelled = AtomicBoolean(false)
                val job = launch(Dispatchers.Default) {
                    try {
                        p.sync(null, null, false)
                        finished.set(true)
                    } catch (e: CancellationException) {
                        cancelled.set(true)
                        throw e
                    }
                }
                delay(600)
                withTimeout(30_000) { job.cancelAndJoin() }
                val kept = p.stats().resources
                println("sync cancel: cancelled=$cancelled finished=$finished, kept $kept, states ${events.syncStates}")
                assertTrue(cancelled.get() && !finished.get(), "every request waits 400 ms, so 600 ms is mid-sync")
                assertTrue(kept <= Fixtures.JENE_RESOURCES, "kept $kept")

                // The profile still works: reads, and a full sync that resumes.
                assertEquals("gp", p.sources().single().name)
                p.timeline(TimelineQuery(limit = 5u))
                val report = withTimeout(120_000) { p.sync(null, null, false) }.single()
                assertTrue(report.complete, "$report")
                assertEquals(SyncState.IDLE, report.state)
                assertEquals(Fixtures.JENE_RESOURCES, p.stats().resources)
                assertEquals(SyncState.IDLE, p.sources().single().state)
            }
        }
    }

    @Test
    fun `the Android wrapper signs in, syncs in a budget and relays progress as a flow`(): Unit = runBlocking {
        Endpoint.start(dir, Fixtures.clemente, listOf("gp", "hospital"), split = true).use { ep ->
            CarryProfile.create(dir.resolve("w").toFile(), "Clemente", TestKeyStore()).use { p ->
                p.addSource(smart("gp", ProviderKind.GP, ep))
                val redirected = sandboxConsent(p.beginSignIn("gp", REDIRECT), CLEMENTE_ID)
                assertTrue(p.completeSignIn("gp", redirected).signedIn)

                val idle = async(start = CoroutineStart.UNDISPATCHED) {
                    p.syncProgress.first { it.state == SyncState.IDLE }
                }
                val report = p.sync(null, budgetSeconds = 25, full = false).single()
                assertTrue(report.complete, "$report")
                assertEquals(CLEMENTE_GP, report.fetched)
                val last = withTimeout(10_000) { idle.await() }
                assertEquals("gp", last.source)
                assertEquals(CLEMENTE_GP, last.fetched)

                assertEquals(listOf("gp"), p.sources().map { it.name })
                assertTrue(p.outbox().isEmpty())
                assertThrows<IllegalArgumentException> { runBlocking { p.sync(budgetSeconds = 0) } }
            }
        }
    }

    private companion object {
        const val REDIRECT = "carry://callback"
        const val CLEMENTE_ID = "d78af07c-9cb9-4f31-9b11-c45a28f2eec8"
        const val JENE_ID = "b13bd1f1-78c4-4cbe-b611-3bedd3bb796b"
        const val CLEMENTE_GP = 54uL
        const val CLEMENTE_HOSPITAL = 19uL
    }
}
