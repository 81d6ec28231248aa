package health.carry.testserver;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.config.SubscriptionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirH2Dialect;
import ca.uhn.fhir.jpa.provider.IJpaSystemProvider;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.rest.api.EncodingEnum;
import ca.uhn.fhir.rest.api.SearchTotalModeEnum;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import jakarta.persistence.EntityManagerFactory;
import java.util.Properties;
import javax.sql.DataSource;
import org.apache.commons.dbcp2.BasicDataSource;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;

/**
 * The beans HAPI's JPA configuration expects the application to supply
 * (database, entity manager, storage settings) plus the RestfulServer itself.
 *
 * Tunables are Java system properties (pass -Dname=value before -jar):
 *   carry.hapi.defaultPageSize   page size when the client sends no _count (HAPI default 10)
 *   carry.hapi.maxPageSize       cap applied to _count (HAPI default 50)
 *   carry.hapi.refIntegrityOnWrite  reject references to missing resources (default true)
 *   carry.hapi.searchCacheMillis reuse identical search results for this long (default 0 = off)
 *   carry.hapi.defaultTotalMode  ACCURATE / ESTIMATED / NONE for searches without _total
 *                                (unset = HAPI default: total only once the search is complete)
 */
@Configuration
public class FhirConfig {

    /** In-memory H2; lives as long as the JVM. */
    @Bean(destroyMethod = "close")
    public BasicDataSource dataSource() {
        BasicDataSource ds = new BasicDataSource();
        ds.setDriverClassName("org.h2.Driver");
        ds.setUrl("jdbc:h2:mem:carry;DB_CLOSE_DELAY=-1");
        ds.setUsername("sa");
        ds.setPassword("");
        ds.setMaxTotal(10);
        return ds;
    }

    @Bean
    public JpaStorageSettings storageSettings() {
        JpaStorageSettings s = new JpaStorageSettings();
        // Client-assigned ids via PUT: HAPI's default ALPHANUMERIC strategy already
        // accepts any id with at least one non-digit (UUIDs, "pat-1", ...).
        s.setResourceClientIdStrategy(JpaStorageSettings.ClientIdStrategyEnum.ALPHANUMERIC);
        s.setDeleteEnabled(true);
        // Deleting a leaf (e.g. an Observation) must never be blocked by references.
        s.setEnforceReferentialIntegrityOnDelete(false);
        s.setEnforceReferentialIntegrityOnWrite(Boolean.parseBoolean(
                System.getProperty("carry.hapi.refIntegrityOnWrite", "true")));
        s.setAllowExternalReferences(true);
        s.setExpungeEnabled(true);
        // HAPI by default answers a repeated identical search from a 60 s result
        // cache, which would hide writes made in between; off unless asked for.
        long cacheMs = Long.getLong("carry.hapi.searchCacheMillis", 0L);
        s.setReuseCachedSearchResultsForMillis(cacheMs > 0 ? cacheMs : null);
        String totalMode = System.getProperty("carry.hapi.defaultTotalMode");
        if (totalMode != null && !totalMode.isBlank()) {
            s.setDefaultTotalMode(SearchTotalModeEnum.valueOf(totalMode.trim().toUpperCase()));
        }
        // No full-text indexing, no background jobs that are not needed.
        s.setHibernateSearchIndexFullText(false);
        s.setAdvancedHSearchIndexing(false);
        s.setEnableTaskBulkImportJobExecution(false);
        s.setEnableTaskBulkExportJobExecution(false);
        s.setEnableTaskPreExpandValueSets(false);
        s.setEnableTaskResourceReindexing(false);
        s.setMarkResourcesForReindexingUponSearchParameterChange(false);
        return s;
    }

    @Bean
    public PartitionSettings partitionSettings() {
        return new PartitionSettings(); // partitioning off
    }

    @Bean
    public SubscriptionSettings subscriptionSettings() {
        return new SubscriptionSettings(); // no subscription channel types enabled
    }

    @Primary
    @Bean
    public LocalContainerEntityManagerFactoryBean entityManagerFactory(
            ConfigurableListableBeanFactory beanFactory,
            FhirContext fhirContext,
            JpaStorageSettings storageSettings,
            DataSource dataSource) {
        LocalContainerEntityManagerFactoryBean emf =
                HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, storageSettings);
        emf.setPersistenceUnitName("HAPI_PU");
        emf.setDataSource(dataSource);
        Properties p = new Properties();
        p.put("hibernate.dialect", HapiFhirH2Dialect.class.getName());
        p.put("hibernate.hbm2ddl.auto", "update"); // create the schema in the empty DB
        p.put("hibernate.search.enabled", "false"); // no Lucene / Elasticsearch
        p.put("hibernate.jdbc.batch_size", "20");
        p.put("hibernate.cache.use_query_cache", "false");
        p.put("hibernate.cache.use_second_level_cache", "false");
        p.put("hibernate.cache.use_structured_entries", "false");
        p.put("hibernate.cache.use_minimal_puts", "false");
        p.put("hibernate.format_sql", "false");
        p.put("hibernate.show_sql", "false");
        p.put("hibernate.archive.scanner", "org.hibernate.boot.archive.scan.internal.DisabledScanner");
        emf.setJpaProperties(p);
        return emf;
    }

    @Primary
    @Bean
    public JpaTransactionManager transactionManager(EntityManagerFactory emf) {
        return new JpaTransactionManager(emf);
    }

    /** The FHIR REST endpoint: every JPA resource provider + system provider. */
    @Bean
    public RestfulServer restfulServer(
            FhirContext fhirContext,
            IFhirSystemDao<?, ?> systemDao,
            ResourceProviderFactory resourceProviders,
            IJpaSystemProvider systemProvider,
            JpaStorageSettings storageSettings,
            ISearchParamRegistry searchParamRegistry,
            IValidationSupport validationSupport,
            DatabaseBackedPagingProvider pagingProvider) {
        RestfulServer server = new RestfulServer(fhirContext);
        // Resource providers include PatientResourceProvider, which carries $everything.
        server.registerProviders(resourceProviders.createProviders());
        server.registerProvider(systemProvider); // transaction/batch, /_history, $meta, ...

        JpaCapabilityStatementProvider capabilities = new JpaCapabilityStatementProvider(
                server, systemDao, storageSettings, searchParamRegistry, validationSupport);
        capabilities.setImplementationDescription("Carry conformance test server (HAPI FHIR JPA, H2)");
        server.setServerConformanceProvider(capabilities);

        pagingProvider.setDefaultPageSize(Integer.getInteger("carry.hapi.defaultPageSize", 10));
        pagingProvider.setMaximumPageSize(Integer.getInteger("carry.hapi.maxPageSize", 50));
        server.setPagingProvider(pagingProvider);

        server.setDefaultResponseEncoding(EncodingEnum.JSON);
        // Base URL / fullUrl from the request's Host header (HAPI's default, kept explicit).
        server.setServerAddressStrategy(new IncomingRequestAddressStrategy());
        return server;
    }
}
