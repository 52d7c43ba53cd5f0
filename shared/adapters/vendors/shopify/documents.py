"""The GraphQL documents the engine sends to Shopify's Admin API, by operation name."""

from __future__ import annotations

import logging

logger = logging.getLogger("shared.adapters.vendors.shopify")  # the package's, as before the split

_PRODUCT_FIELDS = """
  id handle status onlineStoreUrl
  variants(first: 100) { nodes { id sku price } }
"""

PRODUCT_SET = f"""
mutation PodProductSet($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {{
  productSet(input: $input, identifier: $identifier, synchronous: true) {{
    product {{ {_PRODUCT_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

PRODUCT_BY_HANDLE = f"""
query PodProduct($handle: String!) {{
  productByIdentifier(identifier: {{handle: $handle}}) {{ {_PRODUCT_FIELDS} }}
}}"""

PUBLICATIONS = """
query PodPublications { publications(first: 50) { nodes { id catalog { title } } } }
"""

PUBLICATION = """
query PodPublication($id: ID!) { publication(id: $id) { id catalog { title } } }
"""

PUBLISH = """
mutation PodPublish($id: ID!, $input: [PublicationInput!]!) {
  publishablePublish(id: $id, input: $input) {
    publishable { ... on Product { id onlineStoreUrl } }
    userErrors { field message }
  }
}
"""

# A listing taken down but kept (the seller may list it again): its status.
PRODUCT_STATUS = f"""
mutation PodProductStatus($product: ProductUpdateInput!) {{
  productUpdate(product: $product) {{
    product {{ {_PRODUCT_FIELDS} }}
    userErrors {{ field message }}
  }}
}}"""

PRODUCT_DELETE = """
mutation PodProductDelete($input: ProductDeleteInput!) {
  productDelete(input: $input, synchronous: true) {
    deletedProductId
    userErrors { field message }
  }
}
"""

VARIANT_PRICES = """
mutation PodVariantPrices($productId: ID!, $variants: [ProductVariantsBulkInput!]!) {
  productVariantsBulkUpdate(productId: $productId, variants: $variants) {
    productVariants { id sku price }
    userErrors { field message code }
  }
}
"""

# pod doctor's: who the token is, what it may do, which versions the store serves.
INSTALLATION = """
query PodInstallation {
  shop { name myshopifyDomain }
  currentAppInstallation { accessScopes { handle } }
  publicApiVersions { handle supported }
}
"""

# Every document the client sends, by operation name (each document's own).
DOCUMENTS: dict[str, str] = {
    "PodProductSet": PRODUCT_SET,
    "PodProduct": PRODUCT_BY_HANDLE,
    "PodPublications": PUBLICATIONS,
    "PodPublication": PUBLICATION,
    "PodPublish": PUBLISH,
    "PodProductStatus": PRODUCT_STATUS,
    "PodProductDelete": PRODUCT_DELETE,
    "PodVariantPrices": VARIANT_PRICES,
    "PodInstallation": INSTALLATION,
}
