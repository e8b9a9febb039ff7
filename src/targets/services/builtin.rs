//! The built-in service rows: Microsoft services, their endpoint names,
//! Service Tags and the day each stops accepting TLS 1.0 and 1.1, each with
//! its public source. Data only; the lookups are in the parent module.

use super::Service;

/// Services without a date of their own: Azure's announcement of 10 November
/// 2023, postponed on 24 October 2024 to 31 August 2025 for every service
/// that still allowed TLS 1.0/1.1 (summarised e.g. by
/// https://duo-infernale.ch/retirement-tls1-0-tls1-1-versions-azure-services).
const AZURE_WIDE: &str = "https://azure.microsoft.com/updates/ (Azure-wide: TLS 1.0/1.1 end 31 August 2025; no service-specific date found)";
const STORAGE_SOURCE: &str = "https://learn.microsoft.com/azure/storage/common/transport-layer-security-configure-minimum-version (TLS 1.0/1.1 removed 3 February 2026, every cloud)";

/// The built-in table (`tlscensus services` prints it).
pub const BUILT_IN: &[Service] = &[
    Service {
        name: "storage-blob",
        title: "Azure Storage: Blob (and Data Lake via blob endpoints)",
        suffixes: &[
            "blob.core.windows.net",
            "blob.core.usgovcloudapi.net",
            "blob.core.chinacloudapi.cn",
            "blob.storage.azure.net",
        ],
        exact: &[],
        service_tags: &["Storage"],
        tls_end: "2026-02-03",
        source: STORAGE_SOURCE,
    },
    Service {
        name: "storage-file",
        title: "Azure Storage: Files",
        suffixes: &[
            "file.core.windows.net",
            "file.core.usgovcloudapi.net",
            "file.core.chinacloudapi.cn",
        ],
        exact: &[],
        service_tags: &["Storage"],
        tls_end: "2026-02-03",
        source: STORAGE_SOURCE,
    },
    Service {
        name: "storage-queue",
        title: "Azure Storage: Queues",
        suffixes: &[
            "queue.core.windows.net",
            "queue.core.usgovcloudapi.net",
            "queue.core.chinacloudapi.cn",
        ],
        exact: &[],
        service_tags: &["Storage"],
        tls_end: "2026-02-03",
        source: STORAGE_SOURCE,
    },
    Service {
        name: "storage-table",
        title: "Azure Storage: Tables",
        suffixes: &[
            "table.core.windows.net",
            "table.core.usgovcloudapi.net",
            "table.core.chinacloudapi.cn",
        ],
        exact: &[],
        service_tags: &["Storage"],
        tls_end: "2026-02-03",
        source: STORAGE_SOURCE,
    },
    Service {
        name: "storage-dfs",
        title: "Azure Storage: Data Lake Storage Gen2 (dfs)",
        suffixes: &[
            "dfs.core.windows.net",
            "dfs.core.usgovcloudapi.net",
            "dfs.core.chinacloudapi.cn",
        ],
        exact: &[],
        service_tags: &["Storage"],
        tls_end: "2026-02-03",
        source: STORAGE_SOURCE,
    },
    Service {
        name: "storage-web",
        title: "Azure Storage: static websites",
        suffixes: &[
            "web.core.windows.net",
            "web.core.usgovcloudapi.net",
            "web.core.chinacloudapi.cn",
        ],
        exact: &[],
        service_tags: &["Storage"],
        tls_end: "2026-02-03",
        source: STORAGE_SOURCE,
    },
    Service {
        name: "sql",
        title: "Azure SQL Database, SQL Managed Instance, Synapse Analytics",
        suffixes: &[
            "database.windows.net",
            "database.usgovcloudapi.net",
            "database.chinacloudapi.cn",
            "sql.azuresynapse.net",
            "sql.azuresynapse.usgovcloudapi.net",
            "sql.azuresynapse.azure.cn",
        ],
        exact: &[],
        service_tags: &["Sql"],
        tls_end: "2025-08-31",
        source: "https://learn.microsoft.com/azure/azure-sql/managed-instance/minimal-tls-version-configure (TLS 1.0 and 1.1 support ends 31 August 2025)",
    },
    Service {
        name: "cosmosdb",
        title: "Azure Cosmos DB",
        suffixes: &[
            "documents.azure.com",
            "mongo.cosmos.azure.com",
            "cassandra.cosmos.azure.com",
            "gremlin.cosmos.azure.com",
            "table.cosmos.azure.com",
            "documents.azure.us",
            "documents.azure.cn",
        ],
        exact: &[],
        service_tags: &["AzureCosmosDB"],
        tls_end: "2025-08-31",
        source: "https://learn.microsoft.com/azure/cosmos-db/self-serve-minimum-tls-enforcement (from 31 August 2025 all accounts must use TLS 1.2 or higher)",
    },
    Service {
        name: "servicebus",
        title: "Azure Service Bus, Event Hubs, Relay (one namespace domain)",
        suffixes: &[
            "servicebus.windows.net",
            "servicebus.usgovcloudapi.net",
            "servicebus.chinacloudapi.cn",
        ],
        exact: &[],
        service_tags: &["ServiceBus", "EventHub"],
        tls_end: "2025-02-28",
        source: "https://learn.microsoft.com/azure/event-hubs/transport-layer-security-enforce-minimum-version (as of 28 February 2025 TLS 1.0 and 1.1 are no longer supported)",
    },
    Service {
        name: "eventgrid",
        title: "Azure Event Grid",
        suffixes: &[
            "eventgrid.azure.net",
            "eventgrid.azure.us",
            "eventgrid.azure.cn",
        ],
        exact: &[],
        service_tags: &["AzureEventGrid"],
        tls_end: "2025-08-31",
        source: AZURE_WIDE,
    },
    Service {
        name: "redis",
        title: "Azure Cache for Redis",
        suffixes: &[
            "redis.cache.windows.net",
            "redis.cache.usgovcloudapi.net",
            "redis.cache.chinacloudapi.cn",
            "redisenterprise.cache.azure.net",
        ],
        exact: &[],
        service_tags: &[],
        tls_end: "2024-11-01",
        source: "https://learn.microsoft.com/azure/azure-cache-for-redis/cache-remove-tls-10-11 (the TLS 1.2 requirement is enforced from 1 November 2024)",
    },
    Service {
        name: "keyvault",
        title: "Azure Key Vault and Managed HSM",
        suffixes: &[
            "vault.azure.net",
            "vault.usgovcloudapi.net",
            "vault.azure.cn",
            "managedhsm.azure.net",
        ],
        exact: &[],
        service_tags: &["AzureKeyVault"],
        tls_end: "2025-08-31",
        source: AZURE_WIDE,
    },
    Service {
        name: "iothub",
        title: "Azure IoT Hub",
        suffixes: &["azure-devices.net", "azure-devices.us", "azure-devices.cn"],
        exact: &[],
        service_tags: &["AzureIoTHub"],
        tls_end: "2025-08-31",
        source: AZURE_WIDE,
    },
    Service {
        name: "appservice",
        title: "Azure App Service and Functions",
        suffixes: &[
            "azurewebsites.net",
            "azurewebsites.us",
            "chinacloudsites.cn",
        ],
        exact: &[],
        service_tags: &["AppService"],
        tls_end: "2027-05-31",
        source: "https://learn.microsoft.com/azure/app-service/tls-minimum-version (App Service, Functions, Logic Apps Standard and App Service Environments stop accepting inbound TLS 1.0/1.1 on 31 May 2027)",
    },
    Service {
        name: "monitor",
        title: "Azure Monitor ingestion (Log Analytics agents, data collection endpoints, Application Insights)",
        suffixes: &[
            "ods.opinsights.azure.com",
            "oms.opinsights.azure.com",
            "ingest.monitor.azure.com",
            "in.applicationinsights.azure.com",
            "ods.opinsights.azure.us",
            "ods.opinsights.azure.cn",
        ],
        exact: &[],
        service_tags: &["AzureMonitor"],
        tls_end: "2025-08-31",
        source: AZURE_WIDE,
    },
    Service {
        name: "arm",
        title: "Azure Resource Manager",
        suffixes: &[
            "management.azure.com",
            "management.usgovcloudapi.net",
            "management.chinacloudapi.cn",
        ],
        // The endpoint is the apex name itself; regional endpoints are
        // names under it.
        exact: &[
            "management.azure.com",
            "management.usgovcloudapi.net",
            "management.chinacloudapi.cn",
        ],
        service_tags: &["AzureResourceManager"],
        tls_end: "2025-08-31",
        source: AZURE_WIDE,
    },
    Service {
        name: "entra",
        title: "Microsoft Entra ID sign-in",
        suffixes: &[],
        exact: &[
            "login.microsoftonline.com",
            "login.microsoftonline.us",
            "login.partner.microsoftonline.cn",
            "login.windows.net",
        ],
        service_tags: &["AzureActiveDirectory"],
        tls_end: "2022-01-31",
        source: "https://learn.microsoft.com/troubleshoot/entra/entra-id/ad-dmn-services/enable-support-tls-environment (Microsoft Entra ID TLS 1.0/1.1 deprecation: public cloud 31 January 2022, US Government 31 March 2021)",
    },
];
