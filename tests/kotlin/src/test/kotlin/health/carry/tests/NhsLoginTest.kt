package health.carry.tests

import health.carry.ffi.CarryException
import health.carry.ffi.ClientSigner
import health.carry.ffi.NewSource
import health.carry.ffi.Profile
import health.carry.ffi.ProviderKind
import health.carry.ffi.SourceApi
import health.carry.ffi.SourceAuth
import health.carry.ffi.SyncState
import health.carry.ffi.sandboxNhsLogin
import health.carry.ffi.setClientSigner
import java.nio.file.Files
import java.nio.file.Path
import java.security.KeyPair
import java.security.KeyPairGenerator
import java.security.Signature
import java.util.Base64
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.io.TempDir

/**
 * NHS login through the bindings, against the reference endpoint's mock issuer: the
 * app's own key (made and used by the JVM's JCE, not by Carry) signs the client
 * assertion through `ClientSigner`; the ID token is checked in the core; a P9 sign-in
 * gives the NHS number, and a P5 identity or an unknown key is refused with `Auth`.
 */
@Timeout(120)
class NhsLoginTest {
    @TempDir
    lateinit var dir: Path

    private fun rsa(): KeyPair = KeyPairGenerator.getInstance("RSA").apply { initialize(2048) }.generateKeyPair()

    private fun publicPem(keys: KeyPair): Path {
        val body = Base64.getMimeEncoder(64, "\n".toByteArray()).encodeToString(keys.public.encoded)
        val file = dir.resolve("client-${System.nanoTime()}.pem")
        Files.writeString(file, "-----BEGIN PUBLIC KEY-----\n$body\n-----END PUBLIC KEY-----\n")
        return file
    }

    private fun signer(keys: KeyPair) = object : ClientSigner {
        override fun signRs512(message: ByteArray): ByteArray =
            Signature.getInstance("SHA512withRSA").run {
                initSign(keys.private)
                update(message)
                sign()
            }
    }

    private fun source(name: String, client: String, ep: Endpoint) = NewSource(
        name = name,
        kind = ProviderKind.GP,
        baseUrl = ep.base("gp"),
        auth = SourceAuth.NhsLogin(clientId = client, issuer = "http://127.0.0.1:${ep.port}/nhs-login", scope = null),
        patientId = null,
        push = null,
    )

    @Test
    fun `an app signs in with NHS login, its own key signing the client assertion`(): Unit = runBlocking {
        val keys = rsa()
        val stranger = rsa()
        setClientSigner("carry-kotlin", signer(keys))
        setClientSigner("carry-stranger", signer(stranger))
        val args = listOf(
            "--nhs-login-client", "carry-kotlin=${publicPem(keys)}",
            // Registered with another key than the one its app signs with.
            "--nhs-login-client", "carry-stranger=${publicPem(rsa())}",
        )
        Endpoint.start(dir, Fixtures.clemente, listOf("gp"), serveArgs = args).use { ep ->
            Profile.create(dir.resolve("p").toString(), "Alfreda", TestKeyStore(1), null).use { p ->
                p.addSource(source("gp", "carry-kotlin", ep))
                val url = p.beginSignIn("gp", REDIRECT)
                assertTrue(url.contains("vtr=") && url.contains("nonce="), url)
                val info = p.completeSignIn("gp", sandboxNhsLogin(url, NHS_NUMBER, null))
                assertTrue(info.signedIn)
                assertEquals("nhs-login", info.auth)
                assertEquals(NHS_NUMBER, info.patientId)

                // A P5 identity is not enough for a GP record.
                p.addSource(source("gp-p5", "carry-kotlin", ep))
                val low = p.beginSignIn("gp-p5", REDIRECT)
                assertReasonful(assertThrowsSuspend<CarryException.Auth> {
                    p.completeSignIn("gp-p5", sandboxNhsLogin(low, NHS_NUMBER, "P5"))
                })
                assertFalse(p.sources().first { it.name == "gp-p5" }.signedIn)

                // An assertion signed with a key NHS login does not hold for the client.
                p.addSource(source("gp-other", "carry-stranger", ep))
                val other = p.beginSignIn("gp-other", REDIRECT)
                assertReasonful(assertThrowsSuspend<CarryException.Auth> {
                    p.completeSignIn("gp-other", sandboxNhsLogin(other, NHS_NUMBER, null))
                })
                assertFalse(p.sources().first { it.name == "gp-other" }.signedIn)
            }
        }
    }

    @Test
    fun `a GP record comes through GP Connect, converted from STU3 with its original kept`(): Unit = runBlocking {
        val keys = rsa()
        setClientSigner("carry-gpc", signer(keys))
        val args = listOf(
            "--nhs-login-client", "carry-gpc=${publicPem(keys)}",
            "--gp-connect", "practice=${Fixtures.gpConnect}",
        )
        Endpoint.start(dir, Fixtures.clemente, listOf("gp"), serveArgs = args).use { ep ->
            Profile.create(dir.resolve("p").toString(), "Test Patient", TestKeyStore(1), null).use { p ->
                p.addSource(
                    NewSource(
                        name = "gp",
                        kind = ProviderKind.GP,
                        baseUrl = "http://127.0.0.1:${ep.port}/practice/gpconnect/fhir",
                        auth = SourceAuth.NhsLogin(
                            clientId = "carry-gpc",
                            issuer = "http://127.0.0.1:${ep.port}/nhs-login",
                            scope = null,
                        ),
                        api = SourceApi.GP_CONNECT,
                    ),
                )
                val url = p.beginSignIn("gp", REDIRECT)
                p.completeSignIn("gp", sandboxNhsLogin(url, "9999999999", null))
                val report = p.sync("gp", null, false).single()
                // The published example says two areas were not sent, and one List
                // names another NHS number: partial, with both said.
                assertEquals(SyncState.PARTIAL, report.state, "$report")
                assertEquals(1uL, report.refused)
                assertTrue(report.changed > 10uL, "$report")
                val again = p.sync("gp", null, false).single()
                assertEquals(0uL, again.changed, "the same answer changes nothing")
                val held = p.stats().resources
                assertTrue(held > 10uL)
                val source = p.sources().single()
                assertEquals(SourceApi.GP_CONNECT, source.api)
                assertFalse(source.push, "GP Connect is read-only")
            }
        }
    }

    companion object {
        const val REDIRECT = "carry://callback"
        /** NHS England's published example of a valid NHS number. */
        const val NHS_NUMBER = "9434765919"
    }
}
