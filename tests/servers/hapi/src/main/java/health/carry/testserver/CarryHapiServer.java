package health.carry.testserver;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import ca.uhn.fhir.rest.server.RestfulServer;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import org.springframework.boot.Banner;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.web.context.WebServerApplicationContext;
import org.springframework.boot.web.embedded.tomcat.TomcatServletWebServerFactory;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.core.env.Environment;

/**
 * Entry point: a HAPI FHIR JPA server (R4, in-memory H2) served by embedded
 * Tomcat at http://BIND:PORT/fhir. Spring Boot is used only to run Tomcat and
 * the application context; no auto-configuration is switched on, so every
 * bean is either HAPI's own (imported below) or declared in {@link FhirConfig}.
 *
 * Usage: java -jar carry-hapi.jar PORT [BIND_ADDRESS]   (bind defaults to 127.0.0.1)
 */
@Configuration
@Import({
    JpaR4Config.class,                // R4 FhirContext, DAOs + resource providers, JpaConfig
    HapiJpaConfig.class,              // paging provider, stale-search cleanup, search helpers
    ThreadPoolFactoryConfig.class,    // thread pools used by transactions/searches
    JpaBatch2Config.class,            // batch job coordinator (needed by terminology/expunge services)
    Batch2JobsConfig.class,           // job definitions those services submit to
    SubscriptionChannelConfig.class,  // in-memory message broker used by batch2 (no subscriptions)
    FhirConfig.class                  // ours: database, storage settings, RestfulServer
})
public class CarryHapiServer {

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: java -jar carry-hapi.jar PORT [BIND_ADDRESS]");
            System.exit(2);
        }
        long t0 = System.nanoTime();
        SpringApplication app = new SpringApplication(CarryHapiServer.class);
        app.setWebApplicationType(WebApplicationType.SERVLET);
        app.setBannerMode(Banner.Mode.OFF);
        app.setLogStartupInfo(false);
        // HAPI's own configuration has a few bean cycles, as in its starter project.
        app.setAllowCircularReferences(true);
        app.setDefaultProperties(Map.of(
                "carry.port", args[0],
                "carry.bind", args.length > 1 ? args[1] : "127.0.0.1"));

        ConfigurableApplicationContext ctx = app.run();
        Environment env = ctx.getEnvironment();
        int port = ((WebServerApplicationContext) ctx).getWebServer().getPort();
        String base = "http://" + env.getProperty("carry.bind") + ":" + port + "/fhir";
        warmUp(base);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        // The one line callers may wait for (they can also poll GET /fhir/metadata).
        System.out.println("hapi: listening on " + base + " (ready in " + ms + " ms)");
        System.out.flush();
    }

    /** The first /metadata builds the CapabilityStatement (seconds); do it before announcing. */
    private static void warmUp(String base) {
        try {
            HttpClient.newHttpClient().send(
                    HttpRequest.newBuilder(URI.create(base + "/metadata")).timeout(Duration.ofMinutes(2)).build(),
                    HttpResponse.BodyHandlers.discarding());
        } catch (Exception e) {
            System.err.println("hapi: warm-up request failed: " + e);
        }
    }

    /** Embedded Tomcat on the requested address and port. */
    @Bean
    public TomcatServletWebServerFactory tomcat(Environment env) throws Exception {
        TomcatServletWebServerFactory factory =
                new TomcatServletWebServerFactory(Integer.parseInt(env.getRequiredProperty("carry.port")));
        factory.setAddress(InetAddress.getByName(env.getRequiredProperty("carry.bind")));
        // FHIR search URLs carry '|' (token system|code) and sometimes brackets unescaped.
        factory.addConnectorCustomizers(c -> {
            c.setProperty("relaxedQueryChars", "|[]{}^`\\");
            c.setProperty("relaxedPathChars", "|[]{}^`\\");
        });
        return factory;
    }

    /** HAPI's RestfulServer servlet (built in FhirConfig) mounted at /fhir/*. */
    @Bean
    public ServletRegistrationBean<RestfulServer> fhirServlet(RestfulServer restfulServer) {
        ServletRegistrationBean<RestfulServer> reg = new ServletRegistrationBean<>(restfulServer, "/fhir/*");
        reg.setName("fhir");
        reg.setLoadOnStartup(1); // initialise before "listening" is printed
        return reg;
    }
}
